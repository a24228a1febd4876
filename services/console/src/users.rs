//! Signing in (local mode), who am I, and the user list with roles (admins only).

use super::auth::{self, ConsoleUser, Identity, Mode, Role};
use super::error::{ApiError, ApiResult};
use super::{Body, ConsoleApp, audit};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post, put};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub fn routes() -> Router<ConsoleApp> {
    Router::new()
        .route("/api/session", post(sign_in).delete(sign_out))
        .route("/api/me", get(me))
        .route("/api/users", get(list))
        .route("/api/users/{email}", put(set_role))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct SignIn {
    pub email: String,
    pub password: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Session {
    /// For `Authorization: Bearer` (scripts); the UI uses the cookie set alongside.
    pub token: String,
    pub user: Identity,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Me {
    pub email: String,
    pub role: Role,
    /// `iap` or `local`.
    pub auth: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct SetRole {
    pub role: String,
}

/// Local sign-in: a listed user and the shared password.
#[utoipa::path(post, path = "/api/session", tag = "users", request_body = SignIn,
    responses((status = 200, body = Session), (status = 401, body = super::error::ErrorBody)))]
pub async fn sign_in(
    State(app): State<ConsoleApp>,
    Body(req): Body<SignIn>,
) -> ApiResult<Response> {
    let Mode::Local {
        password,
        key,
        session_ttl,
    } = &app.settings.mode
    else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "sign-in is done by Identity-Aware Proxy here",
        ));
    };
    let refused = || ApiError::unauthenticated("wrong email or password");
    let email = auth::normalize_email(&req.email).map_err(|m| ApiError::field("email", m))?;
    if !auth::constant_time_eq(req.password.as_bytes(), password.expose().as_bytes()) {
        tracing::info!("console sign-in refused: wrong password");
        return Err(refused());
    }
    let Some(role) = auth::role_of(app.ds(), &app.settings.admins, &email).await? else {
        tracing::info!("console sign-in refused: not a console user");
        return Err(refused());
    };
    let token = auth::issue_session(key, &email, *session_ttl);
    let cookie = format!(
        "{}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        auth::SESSION_COOKIE,
        session_ttl.as_secs()
    );
    let body = Session {
        token,
        user: Identity { email, role },
    };
    Ok(([(header::SET_COOKIE, cookie)], Json(body)).into_response())
}

#[utoipa::path(delete, path = "/api/session", tag = "users", responses((status = 204)))]
pub async fn sign_out() -> Response {
    let cookie = format!(
        "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
        auth::SESSION_COOKIE
    );
    (StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response()
}

#[utoipa::path(get, path = "/api/me", tag = "users", responses((status = 200, body = Me)))]
pub async fn me(State(app): State<ConsoleApp>, who: Identity) -> Json<Me> {
    Json(Me {
        email: who.email,
        role: who.role,
        auth: app.settings.mode.name().to_owned(),
    })
}

#[utoipa::path(get, path = "/api/users", tag = "users", responses((status = 200, body = Vec<ConsoleUser>)))]
pub async fn list(
    State(app): State<ConsoleApp>,
    who: Identity,
) -> ApiResult<Json<Vec<ConsoleUser>>> {
    who.require(Role::Admin, "list users")?;
    let mut users: Vec<ConsoleUser> = app.ds().list().await?;
    users.sort_by(|a, b| a.email.cmp(&b.email));
    Ok(Json(users))
}

/// Adds a user or changes their role.
#[utoipa::path(put, path = "/api/users/{email}", tag = "users", request_body = SetRole,
    responses((status = 200, body = ConsoleUser), (status = 422, body = super::error::ErrorBody)))]
pub async fn set_role(
    State(app): State<ConsoleApp>,
    who: Identity,
    Path(email): Path<String>,
    Body(req): Body<SetRole>,
) -> ApiResult<Json<ConsoleUser>> {
    who.require(Role::Admin, "manage users")?;
    let email = auth::normalize_email(&email).map_err(|m| ApiError::field("email", m))?;
    let role = Role::parse(&req.role).map_err(|m| ApiError::field("role", m))?;
    if email == who.email && role != Role::Admin {
        return Err(ApiError::field(
            "role",
            "you cannot lower your own role (another admin can)",
        ));
    }
    let before: Option<ConsoleUser> = app.ds().get(&email).await?;
    let user = ConsoleUser {
        email: email.clone(),
        role,
        updated_at: OffsetDateTime::now_utc(),
        updated_by: who.email.clone(),
    };
    audit::save(
        app.ds(),
        &who,
        "user.set_role",
        &email,
        before.as_ref(),
        &user,
    )
    .await?;
    Ok(Json(user))
}
