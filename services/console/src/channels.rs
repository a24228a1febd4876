//! LINE channels: registered with a name and their secret. The secret goes to the secret store (Secret Manager
//! in production) after LINE has accepted it, and is never shown again: answers only say `has_secret`.

use super::auth::{Identity, Role};
use super::error::{ApiError, ApiResult};
use super::{Body, ConsoleApp, audit};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Json;
use axum::routing::get;
use segcast::catalog::Channel;
use segcast::domain::ChannelId;
use segcast::telemetry::Secret;
use serde::Deserialize;
use time::OffsetDateTime;

pub fn routes() -> Router<ConsoleApp> {
    Router::new()
        .route("/api/channels", get(list).post(create))
        .route("/api/channels/{id}", get(one).put(update))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct NewChannel {
    /// LINE's channel ID (digits).
    pub id: String,
    pub name: String,
    /// The channel secret (from the LINE Developers console). Optional when the deployment provides the
    /// channel's credentials in its environment.
    #[serde(default)]
    pub secret: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ChannelUpdate {
    pub name: String,
    /// A new secret (replaces the stored one); omit to keep it.
    #[serde(default)]
    pub secret: Option<String>,
}

fn check_name(name: &str) -> ApiResult<String> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 100 {
        return Err(ApiError::field(
            "name",
            "give a name of 1 to 100 characters",
        ));
    }
    Ok(n.to_owned())
}

/// Checks the secret's shape, that LINE accepts it, and stores it.
async fn store_secret(app: &ConsoleApp, id: &ChannelId, secret: &str) -> ApiResult<()> {
    let secret = secret.trim();
    if secret.is_empty() || secret.len() > 256 || secret.contains(char::is_whitespace) {
        return Err(ApiError::field(
            "secret",
            "a channel secret is one word of at most 256 characters",
        ));
    }
    let Some(store) = &app.secrets else {
        return Err(ApiError::field(
            "secret",
            "this deployment has no secret store (SEGCAST_CHANNEL_SECRETS): give the channel's \
             credentials in its environment instead",
        ));
    };
    let secret = Secret::new(secret);
    let (http, base) = app.line.http();
    if let Err(why) =
        segcast::line::access_token::check_credentials(http, base, id, &secret).await?
    {
        return Err(ApiError::field("secret", why));
    }
    store.put(id, &secret).await?;
    Ok(())
}

#[utoipa::path(get, path = "/api/channels", tag = "channels", responses((status = 200, body = Vec<Channel>)))]
pub async fn list(State(app): State<ConsoleApp>, _who: Identity) -> ApiResult<Json<Vec<Channel>>> {
    let mut all: Vec<Channel> = app.ds().list().await?;
    all.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(all))
}

#[utoipa::path(get, path = "/api/channels/{id}", tag = "channels",
    responses((status = 200, body = Channel), (status = 404, body = super::error::ErrorBody)))]
pub async fn one(
    State(app): State<ConsoleApp>,
    _who: Identity,
    Path(id): Path<String>,
) -> ApiResult<Json<Channel>> {
    Ok(Json(get_channel(&app, &id).await?))
}

pub(crate) async fn get_channel(app: &ConsoleApp, id: &str) -> ApiResult<Channel> {
    app.ds()
        .get::<Channel>(id)
        .await?
        .ok_or_else(|| ApiError::not_found("channel", id))
}

#[utoipa::path(post, path = "/api/channels", tag = "channels", request_body = NewChannel,
    responses((status = 201, body = Channel), (status = 422, body = super::error::ErrorBody)))]
pub async fn create(
    State(app): State<ConsoleApp>,
    who: Identity,
    Body(req): Body<NewChannel>,
) -> ApiResult<(StatusCode, Json<Channel>)> {
    who.require(Role::Admin, "register channels")?;
    let id = ChannelId::parse(req.id.trim()).map_err(|e| ApiError::field("id", e.message))?;
    let name = check_name(&req.name)?;
    if app.ds().get::<Channel>(id.as_str()).await?.is_some() {
        return Err(ApiError::conflict(format!(
            "channel {id} is already registered: edit it instead"
        )));
    }
    let has_secret = match &req.secret {
        Some(s) => {
            store_secret(&app, &id, s).await?;
            true
        }
        None => false,
    };
    let channel = Channel {
        id,
        name,
        has_secret,
        updated_at: Some(OffsetDateTime::now_utc()),
        updated_by: Some(who.email.clone()),
    };
    audit::save(
        app.ds(),
        &who,
        "channel.create",
        channel.id.as_str(),
        None::<&Channel>,
        &channel,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(channel)))
}

#[utoipa::path(put, path = "/api/channels/{id}", tag = "channels", request_body = ChannelUpdate,
    responses((status = 200, body = Channel), (status = 422, body = super::error::ErrorBody)))]
pub async fn update(
    State(app): State<ConsoleApp>,
    who: Identity,
    Path(id): Path<String>,
    Body(req): Body<ChannelUpdate>,
) -> ApiResult<Json<Channel>> {
    who.require(Role::Admin, "edit channels")?;
    let before = get_channel(&app, &id).await?;
    let name = check_name(&req.name)?;
    let mut after = before.clone();
    if let Some(s) = &req.secret {
        store_secret(&app, &before.id, s).await?;
        after.has_secret = true;
    }
    after.name = name;
    after.updated_at = Some(OffsetDateTime::now_utc());
    after.updated_by = Some(who.email.clone());
    audit::save(app.ds(), &who, "channel.update", &id, Some(&before), &after).await?;
    Ok(Json(after))
}
