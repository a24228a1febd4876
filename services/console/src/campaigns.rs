//! Campaigns: content + segment + channel + send time (in a time zone, with optional quiet hours). Created as
//! drafts, editable until they start, scheduled (large ones only after a second user approves), paused,
//! resumed, canceled, duplicated; a test send goes to listed users now.
//!
//! Every state change is a rule of [`Campaign`] applied by [`audit::change_campaign`]: the change and its
//! audit entry are one Datastore transaction, so a command that does not apply changes nothing and says why
//! (409 with the rule's `code`), a missing campaign is 404 and a store failure 500.

use super::auth::{Identity, Role};
use super::error::{ApiError, ApiResult};
use super::{Body, ConsoleApp, audit};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Json;
use axum::routing::{get, post};
use segcast::catalog::{Content, Segment};
use segcast::domain::{Approval, Campaign, CampaignStatus, NotAllowed, QuietHours, UserId};
use segcast::pipeline::control::{self, TestSendResult};
use serde::Deserialize;
use time::OffsetDateTime;

pub fn routes() -> Router<ConsoleApp> {
    Router::new()
        .route("/api/campaigns", get(list).post(create))
        .route("/api/campaigns/{id}", get(one).put(update))
        .route("/api/campaigns/{id}/schedule", post(schedule))
        .route("/api/campaigns/{id}/approve", post(approve))
        .route("/api/campaigns/{id}/pause", post(pause))
        .route("/api/campaigns/{id}/resume", post(resume))
        .route("/api/campaigns/{id}/cancel", post(cancel))
        .route("/api/campaigns/{id}/duplicate", post(duplicate))
        .route("/api/campaigns/{id}/test-send", post(test_send))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct CampaignInput {
    pub name: String,
    pub content_id: String,
    pub segment_id: String,
    pub channel_id: String,
    /// When to send: RFC 3339 (`2026-12-01T10:00:00+09:00`), or a local time (`2026-12-01T10:00`) in
    /// `time_zone`. Omitted: as soon as it is scheduled.
    #[serde(default)]
    pub send_at: Option<String>,
    /// IANA time zone (`Asia/Tokyo`); UTC when omitted.
    #[serde(default)]
    pub time_zone: Option<String>,
    #[serde(default)]
    pub quiet_hours: Option<QuietHours>,
    /// Everything but sending: LINE's validate endpoint instead of push/multicast.
    #[serde(default)]
    pub dry_run: bool,
    /// Diff-retry rounds at most (1 to 10, default 4).
    #[serde(default)]
    pub max_rounds: Option<u32>,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct PauseInput {
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct TestSendInput {
    /// LINE user IDs (e.g. the marketer's own), 1 to 10.
    pub user_ids: Vec<String>,
    /// Values for the content's placeholders.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub attrs: serde_json::Map<String, serde_json::Value>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct TestSendAnswer {
    pub user_id: String,
    pub delivered: bool,
    pub detail: Option<String>,
}

impl From<TestSendResult> for TestSendAnswer {
    fn from(r: TestSendResult) -> Self {
        Self {
            user_id: r.user_id,
            delivered: r.delivered,
            detail: r.detail,
        }
    }
}

/// Parses the send time: absolute RFC 3339, or local wall-clock time in `tz`.
fn parse_send_at(v: &str, tz: &str) -> Result<OffsetDateTime, String> {
    if let Ok(t) = OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339) {
        return Ok(t);
    }
    let civil: jiff::civil::DateTime = v.parse().map_err(|_| {
        format!(
            "{v:?} is not a time: use 2026-12-01T10:00 (in the campaign's time zone) or RFC 3339"
        )
    })?;
    let zoned = civil.in_tz(tz).map_err(|e| format!("{v:?} in {tz}: {e}"))?;
    OffsetDateTime::from_unix_timestamp(zoned.timestamp().as_second()).map_err(|e| e.to_string())
}

/// The campaign fields from `input`, every check done (references exist, channel has credentials, the
/// content's placeholders are segment columns, time in the future).
async fn from_input(app: &ConsoleApp, input: &CampaignInput) -> ApiResult<Campaign> {
    let now = app.ctx.clock.now();
    let when = check_when(input, now)?;
    let content = super::contents::get_content(app, &input.content_id)
        .await
        .map_err(|e| refer("content_id", e))?;
    let segment = super::segments::get_segment(app, &input.segment_id)
        .await
        .map_err(|e| refer("segment_id", e))?;
    let channel = super::channels::get_channel(app, &input.channel_id)
        .await
        .map_err(|e| refer("channel_id", e))?;
    // The channel must have working credentials (from the console's secret store or the environment): a
    // token is issued (and cached for the handlers' use of the same provider) or the reason is shown.
    if let Err(e) = app.line.tokens.token(&channel.id).await {
        return Err(ApiError::field(
            "channel_id",
            format!("channel {} has no working credentials: {e:#}", channel.id),
        ));
    }
    if let Err(errs) = content.check_links(&app.ctx.settings.click) {
        return Err(ApiError::fields(errs));
    }
    check_columns(&content, &segment)?;
    let mut c = Campaign::draft(
        when.name,
        content.id,
        segment.id,
        channel.id,
        when.send_at,
        now,
    );
    c.dry_run = input.dry_run;
    c.max_rounds = when.max_rounds;
    c.time_zone = Some(when.time_zone);
    c.quiet_hours = input.quiet_hours.clone();
    Ok(c)
}

/// The checked name, time zone, send time and rounds of a campaign's input.
struct When {
    name: String,
    time_zone: String,
    send_at: OffsetDateTime,
    max_rounds: u32,
}

fn check_when(input: &CampaignInput, now: OffsetDateTime) -> ApiResult<When> {
    let name = input.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::field(
            "name",
            "give a name of 1 to 100 characters",
        ));
    }
    let tz = input
        .time_zone
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .unwrap_or("UTC")
        .to_owned();
    if jiff::tz::TimeZone::get(&tz).is_err() {
        return Err(ApiError::field(
            "time_zone",
            format!("{tz:?} is not a known time zone (e.g. Asia/Tokyo)"),
        ));
    }
    let send_at = match input
        .send_at
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => now,
        Some(v) => {
            let t = parse_send_at(v, &tz).map_err(|m| ApiError::field("send_at", m))?;
            if t < now - time::Duration::minutes(1) {
                return Err(ApiError::field(
                    "send_at",
                    format!(
                        "{v} is in the past: choose a later time, or leave it empty to send when scheduled"
                    ),
                ));
            }
            t
        }
    };
    if let Some(q) = &input.quiet_hours {
        q.check(&tz).map_err(ApiError::from)?;
    }
    let max_rounds = input.max_rounds.unwrap_or(4);
    if !(1..=10).contains(&max_rounds) {
        return Err(ApiError::field("max_rounds", "between 1 and 10 rounds"));
    }
    Ok(When {
        name: name.to_owned(),
        time_zone: tz,
        send_at,
        max_rounds,
    })
}

/// The content's placeholders are columns the segment returns (when its columns are known).
fn check_columns(content: &Content, segment: &Segment) -> ApiResult<()> {
    let fields = content
        .messages
        .placeholders()
        .map_err(ApiError::from)?
        .fields;
    let missing: Vec<&String> = fields
        .iter()
        .filter(|f| !segment.columns.is_empty() && !segment.columns.contains(f))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(ApiError::field(
        "segment_id",
        format!(
            "the content uses {} but the segment returns no such column (it returns {})",
            missing
                .iter()
                .map(|f| format!("{{{{{f}}}}}"))
                .collect::<Vec<_>>()
                .join(", "),
            segment.columns.join(", ")
        ),
    ))
}

/// A 404 for a referenced id becomes a 422 naming the field.
fn refer(field: &str, e: ApiError) -> ApiError {
    if e.status == StatusCode::NOT_FOUND {
        ApiError::field(field, e.message)
    } else {
        e
    }
}

pub(crate) async fn get_campaign(app: &ConsoleApp, id: &str) -> ApiResult<Campaign> {
    app.ds()
        .get::<Campaign>(id)
        .await?
        .ok_or_else(|| ApiError::not_found("campaign", id))
}

#[utoipa::path(get, path = "/api/campaigns", tag = "campaigns", responses((status = 200, body = Vec<Campaign>)))]
pub async fn list(State(app): State<ConsoleApp>, _who: Identity) -> ApiResult<Json<Vec<Campaign>>> {
    let mut all: Vec<Campaign> = app.ds().list().await?;
    all.sort_by_key(|c| std::cmp::Reverse(c.send_at));
    Ok(Json(all))
}

#[utoipa::path(get, path = "/api/campaigns/{id}", tag = "campaigns",
    responses((status = 200, body = Campaign), (status = 404, body = super::error::ErrorBody)))]
pub async fn one(
    State(app): State<ConsoleApp>,
    _who: Identity,
    Path(id): Path<String>,
) -> ApiResult<Json<Campaign>> {
    Ok(Json(get_campaign(&app, &id).await?))
}

#[utoipa::path(post, path = "/api/campaigns", tag = "campaigns", request_body = CampaignInput,
    responses((status = 201, body = Campaign), (status = 422, body = super::error::ErrorBody)))]
pub async fn create(
    State(app): State<ConsoleApp>,
    who: Identity,
    Body(input): Body<CampaignInput>,
) -> ApiResult<(StatusCode, Json<Campaign>)> {
    who.require(Role::Editor, "create campaigns")?;
    let mut c = from_input(&app, &input).await?;
    c.created_by = Some(who.email.clone());
    audit::create_campaign(app.ds(), &who, "campaign.create", None, &c).await?;
    Ok((StatusCode::CREATED, Json(c)))
}

/// Edits a campaign that has not started. A scheduled campaign goes back to draft (schedule it again; an
/// approval is needed again too).
#[utoipa::path(put, path = "/api/campaigns/{id}", tag = "campaigns", request_body = CampaignInput,
    responses((status = 200, body = Campaign), (status = 409, body = super::error::ErrorBody),
              (status = 422, body = super::error::ErrorBody)))]
pub async fn update(
    State(app): State<ConsoleApp>,
    who: Identity,
    Path(id): Path<String>,
    Body(input): Body<CampaignInput>,
) -> ApiResult<Json<Campaign>> {
    who.require(Role::Editor, "edit campaigns")?;
    editable(&get_campaign(&app, &id).await?)?;
    let fresh = from_input(&app, &input).await?;
    let now = app.ctx.clock.now();
    let after = audit::change_campaign(app.ds(), &who, "campaign.update", &id, |c| {
        editable(c)?;
        c.name = fresh.name.clone();
        c.content_id = fresh.content_id.clone();
        c.segment_id = fresh.segment_id.clone();
        c.channel_id = fresh.channel_id.clone();
        c.send_at = fresh.send_at;
        c.time_zone = fresh.time_zone.clone();
        c.quiet_hours = fresh.quiet_hours.clone();
        c.dry_run = fresh.dry_run;
        c.max_rounds = fresh.max_rounds;
        c.approval = None;
        c.next_check_at = None;
        if c.status == CampaignStatus::Scheduled {
            c.transition(
                CampaignStatus::Draft,
                Some("edited: schedule it again".into()),
                now,
            )?;
        }
        c.updated_at = now;
        Ok(())
    })
    .await?;
    Ok(Json(after))
}

fn editable(c: &Campaign) -> Result<(), NotAllowed> {
    match c.status {
        CampaignStatus::Draft | CampaignStatus::Scheduled => Ok(()),
        s => Err(NotAllowed::new(
            "not_editable",
            format!(
                "campaign {} is {s}: only a draft or scheduled campaign can be edited (duplicate it instead)",
                c.id
            ),
        )),
    }
}

/// Only a draft can be scheduled (or asked for approval).
fn draft(c: &Campaign) -> Result<(), NotAllowed> {
    if c.status == CampaignStatus::Draft {
        Ok(())
    } else {
        Err(NotAllowed::new(
            "not_a_draft",
            format!(
                "campaign {} is {}: only a draft can be scheduled",
                c.id, c.status
            ),
        ))
    }
}

/// Schedules a draft. Over the approval threshold it stays a draft with an approval request (202) until a
/// second user approves.
#[utoipa::path(post, path = "/api/campaigns/{id}/schedule", tag = "campaigns",
    responses((status = 200, body = Campaign), (status = 202, body = Campaign, description = "waiting for approval"),
              (status = 409, body = super::error::ErrorBody)))]
pub async fn schedule(
    State(app): State<ConsoleApp>,
    who: Identity,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Campaign>)> {
    who.require(Role::Editor, "schedule campaigns")?;
    let before = get_campaign(&app, &id).await?;
    draft(&before)?;
    let approved = before
        .approval
        .as_ref()
        .is_some_and(|a| a.approved_by.is_some());
    let now = app.ctx.clock.now();
    if !approved {
        let segment = super::segments::get_segment(&app, before.segment_id.as_str()).await?;
        let n = super::segments::count(&app, &segment.sql).await? as u64;
        if n > app.settings.approval_threshold {
            let after =
                audit::change_campaign(app.ds(), &who, "campaign.request_approval", &id, |c| {
                    draft(c)?;
                    c.approval = Some(Approval {
                        requested_by: who.email.clone(),
                        requested_at: now,
                        recipients: n,
                        approved_by: None,
                        approved_at: None,
                    });
                    c.status_reason = Some(format!(
                        "{n} recipients: waiting for approval by a second user"
                    ));
                    c.updated_at = now;
                    Ok(())
                })
                .await?;
            return Ok((StatusCode::ACCEPTED, Json(after)));
        }
    }
    let after = audit::change_campaign(app.ds(), &who, "campaign.schedule", &id, |c| {
        draft(c)?;
        c.transition(CampaignStatus::Scheduled, None, now)
    })
    .await?;
    Ok((StatusCode::OK, Json(after)))
}

/// A second user (approver or admin, neither its creator nor who asked) approves; the campaign is scheduled.
#[utoipa::path(post, path = "/api/campaigns/{id}/approve", tag = "campaigns",
    responses((status = 200, body = Campaign), (status = 403, body = super::error::ErrorBody),
              (status = 409, body = super::error::ErrorBody)))]
pub async fn approve(
    State(app): State<ConsoleApp>,
    who: Identity,
    Path(id): Path<String>,
) -> ApiResult<Json<Campaign>> {
    who.require(Role::Approver, "approve campaigns")?;
    let before = get_campaign(&app, &id).await?;
    let Some(request) = before.approval.as_ref().filter(|a| a.approved_by.is_none()) else {
        return Err(
            ApiError::conflict(format!("campaign {id} is not waiting for approval"))
                .with_code("not_waiting_for_approval"),
        );
    };
    if request.requested_by == who.email || before.created_by.as_deref() == Some(&who.email) {
        return Err(ApiError::forbidden(
            "you cannot approve your own campaign: a second user must approve it",
        ));
    }
    draft(&before)?;
    let now = app.ctx.clock.now();
    let after = audit::change_campaign(app.ds(), &who, "campaign.approve", &id, |c| {
        // Checked again in the transaction: a concurrent edit may have cleared the request.
        draft(c)?;
        let Some(a) = c.approval.as_mut().filter(|a| a.approved_by.is_none()) else {
            return Err(NotAllowed::new(
                "not_waiting_for_approval",
                format!("campaign {} is not waiting for approval", c.id),
            ));
        };
        a.approved_by = Some(who.email.clone());
        a.approved_at = Some(now);
        c.transition(CampaignStatus::Scheduled, None, now)
    })
    .await?;
    Ok(Json(after))
}

#[utoipa::path(post, path = "/api/campaigns/{id}/pause", tag = "campaigns", request_body = PauseInput,
    responses((status = 200, body = Campaign), (status = 409, body = super::error::ErrorBody)))]
pub async fn pause(
    State(app): State<ConsoleApp>,
    who: Identity,
    Path(id): Path<String>,
    Body(body): Body<PauseInput>,
) -> ApiResult<Json<Campaign>> {
    who.require(Role::Editor, "pause campaigns")?;
    let reason = body
        .reason
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| format!("paused by {}", who.email));
    let now = app.ctx.clock.now();
    let after = audit::change_campaign(app.ds(), &who, "campaign.pause", &id, |c| {
        c.pause(&reason, now)
    })
    .await?;
    Ok(Json(after))
}

#[utoipa::path(post, path = "/api/campaigns/{id}/resume", tag = "campaigns",
    responses((status = 200, body = Campaign), (status = 409, body = super::error::ErrorBody)))]
pub async fn resume(
    State(app): State<ConsoleApp>,
    who: Identity,
    Path(id): Path<String>,
) -> ApiResult<Json<Campaign>> {
    who.require(Role::Editor, "resume campaigns")?;
    let now = app.ctx.clock.now();
    let after =
        audit::change_campaign(app.ds(), &who, "campaign.resume", &id, |c| c.resume(now)).await?;
    Ok(Json(after))
}

#[utoipa::path(post, path = "/api/campaigns/{id}/cancel", tag = "campaigns",
    responses((status = 200, body = Campaign), (status = 409, body = super::error::ErrorBody)))]
pub async fn cancel(
    State(app): State<ConsoleApp>,
    who: Identity,
    Path(id): Path<String>,
) -> ApiResult<Json<Campaign>> {
    who.require(Role::Editor, "cancel campaigns")?;
    let (now, settle_after) = (app.ctx.clock.now(), app.ctx.settings.delivery.ack_deadline);
    let after = audit::change_campaign(app.ds(), &who, "campaign.cancel", &id, |c| {
        c.cancel(now, settle_after)
    })
    .await?;
    Ok(Json(after))
}

/// A new draft with the same content, segment, channel and settings.
#[utoipa::path(post, path = "/api/campaigns/{id}/duplicate", tag = "campaigns",
    responses((status = 201, body = Campaign), (status = 404, body = super::error::ErrorBody)))]
pub async fn duplicate(
    State(app): State<ConsoleApp>,
    who: Identity,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Campaign>)> {
    who.require(Role::Editor, "duplicate campaigns")?;
    let original = get_campaign(&app, &id).await?;
    let now = app.ctx.clock.now();
    let name = format!("Copy of {}", original.name)
        .chars()
        .take(100)
        .collect();
    // A new draft (nothing run, counted or approved) with the original's content, segment, channel and settings.
    let mut copy = Campaign::draft(
        name,
        original.content_id.clone(),
        original.segment_id.clone(),
        original.channel_id.clone(),
        original.send_at.max(now),
        now,
    );
    copy.dry_run = original.dry_run;
    copy.max_rounds = original.max_rounds;
    copy.time_zone = original.time_zone.clone();
    copy.quiet_hours = original.quiet_hours.clone();
    copy.created_by = Some(who.email.clone());
    let from = serde_json::json!({"from": id});
    audit::create_campaign(app.ds(), &who, "campaign.duplicate", Some(&from), &copy).await?;
    Ok((StatusCode::CREATED, Json(copy)))
}

/// Sends the campaign's content now, by push, to 1 to 10 listed users. Not part of the campaign.
#[utoipa::path(post, path = "/api/campaigns/{id}/test-send", tag = "campaigns", request_body = TestSendInput,
    responses((status = 200, body = Vec<TestSendAnswer>), (status = 422, body = super::error::ErrorBody)))]
pub async fn test_send(
    State(app): State<ConsoleApp>,
    who: Identity,
    Path(id): Path<String>,
    Body(input): Body<TestSendInput>,
) -> ApiResult<Json<Vec<TestSendAnswer>>> {
    who.require(Role::Editor, "send tests")?;
    let c = get_campaign(&app, &id).await?;
    if input.user_ids.is_empty() || input.user_ids.len() > control::TEST_SEND_MAX {
        return Err(ApiError::field(
            "user_ids",
            format!("list 1 to {} LINE user IDs", control::TEST_SEND_MAX),
        ));
    }
    let mut users = Vec::new();
    for (i, u) in input.user_ids.iter().enumerate() {
        users.push(
            UserId::parse(u.trim())
                .map_err(|e| ApiError::field(format!("user_ids[{i}]"), e.message))?,
        );
    }
    let results = control::test_send(app.ds(), &app.line, &c.id, &users, &input.attrs).await?;
    audit::record(
        app.ds(),
        &who,
        "campaign.test_send",
        &id,
        None::<&()>,
        Some(&serde_json::json!({"user_ids": input.user_ids, "delivered": results.iter().filter(|r| r.delivered).count()})),
    )
    .await?;
    Ok(Json(results.into_iter().map(Into::into).collect()))
}
