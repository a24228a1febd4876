//! Contents: the LINE messages a campaign sends, validated on save against LINE's rules (and LINE's own
//! validate endpoint when a channel is named), versioned on every edit. `{{column}}` placeholders are filled
//! from segment columns and switch the campaign to push; content without them goes by multicast.
//! `{{link:ID}}` marks a tracked link (see [`segcast::click::links`]).

use super::auth::{Identity, Role};
use super::error::{ApiError, ApiResult};
use super::{Body, ConsoleApp, audit};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Json;
use axum::routing::{get, post};
use segcast::catalog::{Content, ContentVersion};
use segcast::domain::Campaign;
use segcast::domain::{ChannelId, ContentId, Messages, ParseError};
use segcast::gcp::datastore::Indexed;
use segcast::line::{Endpoint, SendOutcome};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use time::OffsetDateTime;

pub fn routes() -> Router<ConsoleApp> {
    Router::new()
        .route("/api/contents", get(list).post(create))
        .route("/api/contents/validate", post(validate))
        .route("/api/contents/{id}", get(one).put(update))
        .route("/api/contents/{id}/versions", get(versions))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ContentInput {
    pub name: String,
    /// 1 to 5 LINE message objects (text, image, sticker, flex, template, ...).
    #[schema(value_type = Vec<Object>)]
    pub messages: Value,
    /// Tracked links: id -> target URL, used in messages as `{{link:ID}}`.
    #[serde(default)]
    pub links: BTreeMap<String, String>,
    /// Also ask LINE's validate endpoint, with this channel's credentials.
    #[serde(default)]
    pub channel_id: Option<String>,
}

/// A content as the API shows it: the stored content plus how it will go out.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ContentView {
    #[serde(flatten)]
    pub content: Content,
    /// `multicast` (same for everyone) or `push` (personalised).
    pub delivery: String,
    /// Segment columns the placeholders use.
    pub placeholders: Vec<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Validation {
    pub ok: bool,
    pub delivery: String,
    pub placeholders: Vec<String>,
}

fn view(content: Content) -> ContentView {
    let placeholders: Vec<String> = content
        .messages
        .placeholders()
        .map(|p| p.fields.into_iter().collect())
        .unwrap_or_default();
    ContentView {
        delivery: if placeholders.is_empty() {
            "multicast"
        } else {
            "push"
        }
        .into(),
        placeholders,
        content,
    }
}

/// Everything checkable about the input; every problem at once, each naming its field.
async fn check(app: &ConsoleApp, input: &ContentInput) -> ApiResult<(String, Messages)> {
    let mut errors = Vec::new();
    let name = input.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 100 {
        errors.push(ParseError::new(
            "name",
            "give a name of 1 to 100 characters",
        ));
    }
    let messages = match &input.messages {
        Value::Array(a) if a.is_empty() => {
            errors.push(ParseError::new("messages", "add at least one message"));
            None
        }
        Value::Array(_) => match Messages::parse(&input.messages) {
            Ok(m) => Some(m),
            Err(errs) => {
                errors.extend(errs.into_iter().map(|e| {
                    let field = if e.field.starts_with("messages") {
                        e.field
                    } else {
                        format!(
                            "messages{}{}",
                            if e.field.starts_with('[') { "" } else { "." },
                            e.field
                        )
                    };
                    ParseError::new(field, e.message)
                }));
                None
            }
        },
        _ => {
            errors.push(ParseError::new(
                "messages",
                "messages must be a JSON array of LINE message objects",
            ));
            None
        }
    };
    if let Some(m) = &messages
        && let Err(errs) =
            segcast::click::links::check_content(&app.ctx.settings.click, m, &input.links)
    {
        errors.extend(errs);
    }
    if !errors.is_empty() {
        return Err(ApiError::fields(errors));
    }
    let messages = messages.expect("no errors means parsed");
    if let Some(ch) = input.channel_id.as_deref().filter(|c| !c.is_empty()) {
        validate_with_line(app, ch, &messages, &input.links).await?;
    }
    Ok((name, messages))
}

/// Asks LINE's validate endpoint about the messages as they go out on `channel` (sample values for
/// placeholders, targets for tracked links).
async fn validate_with_line(
    app: &ConsoleApp,
    ch: &str,
    messages: &Messages,
    links: &std::collections::BTreeMap<String, String>,
) -> ApiResult<()> {
    {
        let channel = ChannelId::parse(ch).map_err(|e| ApiError::field("channel_id", e.message))?;
        super::channels::get_channel(app, ch).await?;
        let endpoint = if messages.is_personalized() {
            Endpoint::Push
        } else {
            Endpoint::Multicast
        };
        // LINE sees the messages as they go out: sample values for placeholders, targets for tracked links.
        let sample: serde_json::Map<String, Value> = messages
            .placeholders()
            .map(|p| {
                p.fields
                    .into_iter()
                    .map(|f| (f, Value::String("sample".into())))
                    .collect()
            })
            .unwrap_or_default();
        let rendered = segcast::click::links::with_targets(&messages.render(&sample), links);
        match app.line.validate(&channel, endpoint, &rendered).await {
            SendOutcome::Accepted { .. } => {}
            SendOutcome::Rejected { status, message } => {
                return Err(ApiError::field(
                    "messages",
                    format!("LINE's validate endpoint refused them (HTTP {status}): {message}"),
                ));
            }
            other => {
                return Err(ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    format!("LINE's validate endpoint could not be asked: {other:?}"),
                ));
            }
        }
    }
    Ok(())
}

#[utoipa::path(post, path = "/api/contents/validate", tag = "contents", request_body = ContentInput,
    responses((status = 200, body = Validation), (status = 422, body = super::error::ErrorBody)))]
pub async fn validate(
    State(app): State<ConsoleApp>,
    who: Identity,
    Body(input): Body<ContentInput>,
) -> ApiResult<Json<Validation>> {
    who.require(Role::Editor, "validate content")?;
    let (_, messages) = check(&app, &input).await?;
    let v = view(Content {
        id: ContentId::generate(),
        name: String::new(),
        messages,
        links: input.links,
        updated_at: OffsetDateTime::now_utc(),
        version: 1,
        updated_by: None,
    });
    Ok(Json(Validation {
        ok: true,
        delivery: v.delivery,
        placeholders: v.placeholders,
    }))
}

#[utoipa::path(get, path = "/api/contents", tag = "contents", responses((status = 200, body = Vec<ContentView>)))]
pub async fn list(
    State(app): State<ConsoleApp>,
    _who: Identity,
) -> ApiResult<Json<Vec<ContentView>>> {
    let mut all: Vec<Content> = app.ds().list().await?;
    all.sort_by_key(|c| std::cmp::Reverse(c.updated_at));
    Ok(Json(all.into_iter().map(view).collect()))
}

pub(crate) async fn get_content(app: &ConsoleApp, id: &str) -> ApiResult<Content> {
    app.ds()
        .get::<Content>(id)
        .await?
        .ok_or_else(|| ApiError::not_found("content", id))
}

#[utoipa::path(get, path = "/api/contents/{id}", tag = "contents",
    responses((status = 200, body = ContentView), (status = 404, body = super::error::ErrorBody)))]
pub async fn one(
    State(app): State<ConsoleApp>,
    _who: Identity,
    Path(id): Path<String>,
) -> ApiResult<Json<ContentView>> {
    Ok(Json(view(get_content(&app, &id).await?)))
}

#[utoipa::path(post, path = "/api/contents", tag = "contents", request_body = ContentInput,
    responses((status = 201, body = ContentView), (status = 422, body = super::error::ErrorBody)))]
pub async fn create(
    State(app): State<ConsoleApp>,
    who: Identity,
    Body(input): Body<ContentInput>,
) -> ApiResult<(StatusCode, Json<ContentView>)> {
    who.require(Role::Editor, "create content")?;
    let (name, messages) = check(&app, &input).await?;
    let content = Content {
        id: ContentId::generate(),
        name,
        messages,
        links: input.links,
        updated_at: OffsetDateTime::now_utc(),
        version: 1,
        updated_by: Some(who.email.clone()),
    };
    audit::save(
        app.ds(),
        &who,
        "content.create",
        content.id.as_str(),
        None::<&Content>,
        &content,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(view(content))))
}

/// A new version. Refused while a campaign using the content is scheduled or sending (duplicate the content,
/// or cancel the campaign, instead): what is sent must be what was approved.
#[utoipa::path(put, path = "/api/contents/{id}", tag = "contents", request_body = ContentInput,
    responses((status = 200, body = ContentView), (status = 409, body = super::error::ErrorBody),
              (status = 422, body = super::error::ErrorBody)))]
pub async fn update(
    State(app): State<ConsoleApp>,
    who: Identity,
    Path(id): Path<String>,
    Body(input): Body<ContentInput>,
) -> ApiResult<Json<ContentView>> {
    who.require(Role::Editor, "edit content")?;
    let before = get_content(&app, &id).await?;
    let (name, messages) = check(&app, &input).await?;
    let campaigns: Vec<Campaign> = app.ds().list().await?;
    if let Some(c) = campaigns.iter().find(|c| {
        c.content_id == before.id
            && !c.status.is_final()
            && c.status != segcast::domain::CampaignStatus::Draft
    }) {
        return Err(ApiError::conflict(format!(
            "campaign {:?} ({}) uses this content and is {}: cancel it or create a new content",
            c.name, c.id, c.status
        )));
    }
    app.ds()
        .upsert(&ContentVersion {
            content_id: before.id.clone(),
            content: before.clone(),
        })
        .await?;
    let after = Content {
        id: before.id.clone(),
        name,
        messages,
        links: input.links,
        updated_at: OffsetDateTime::now_utc(),
        version: before.version + 1,
        updated_by: Some(who.email.clone()),
    };
    audit::save(app.ds(), &who, "content.update", &id, Some(&before), &after).await?;
    Ok(Json(view(after)))
}

/// Every version, newest first (the current one included).
#[utoipa::path(get, path = "/api/contents/{id}/versions", tag = "contents",
    responses((status = 200, body = Vec<Content>)))]
pub async fn versions(
    State(app): State<ConsoleApp>,
    _who: Identity,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<Content>>> {
    let current = get_content(&app, &id).await?;
    let old: Vec<ContentVersion> = app
        .ds()
        .query_eq("content_id", Indexed::Str(id.clone()))
        .await?;
    let mut all: Vec<Content> = old.into_iter().map(|v| v.content).collect();
    all.push(current);
    all.sort_by_key(|c| std::cmp::Reverse(c.version));
    Ok(Json(all))
}
