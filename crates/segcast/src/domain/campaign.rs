//! The campaign and its state machine.
//!
//! ```text
//! draft -> scheduled -> extracting -> fanning_out -> delivering -> completed
//!                                          ^              |
//!                                          +-- retrying <-+   (diff-retry rounds)
//! any active state -> paused -> (back to where it was) ; any non-final state -> canceled ; -> failed (reason)
//! ```

use super::{CampaignId, ChannelId, ContentId, SegmentId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CampaignStatus {
    Draft,
    Scheduled,
    Extracting,
    FanningOut,
    Delivering,
    Retrying,
    Completed,
    Paused,
    Canceled,
    Failed,
}

impl CampaignStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Scheduled => "scheduled",
            Self::Extracting => "extracting",
            Self::FanningOut => "fanning_out",
            Self::Delivering => "delivering",
            Self::Retrying => "retrying",
            Self::Completed => "completed",
            Self::Paused => "paused",
            Self::Canceled => "canceled",
            Self::Failed => "failed",
        }
    }

    /// States in which the scheduler drives the campaign forward.
    pub fn is_running(self) -> bool {
        matches!(
            self,
            Self::Extracting | Self::FanningOut | Self::Delivering | Self::Retrying
        )
    }

    /// States that never change again.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Canceled | Self::Failed)
    }

    /// Whether the state machine allows `self -> to`.
    pub fn can_become(self, to: CampaignStatus) -> bool {
        use CampaignStatus::*;
        match (self, to) {
            (Draft, Scheduled) | (Scheduled, Draft) => true,
            (Scheduled, Extracting) => true,
            (Extracting, FanningOut) | (FanningOut, Delivering) => true,
            (Delivering, Retrying) | (Retrying, FanningOut) => true,
            (Delivering, Completed) | (Retrying, Completed) => true,
            (from, Paused) => from.is_running() || from == Scheduled,
            (Paused, back) => back.is_running() || back == Scheduled,
            (from, Canceled) => !from.is_final(),
            (from, Failed) => !from.is_final(),
            _ => false,
        }
    }
}

impl std::fmt::Display for CampaignStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A command or step that the campaign's state does not allow. `code` is stable and machine-readable (the
/// console's API answers carry it); `message` says it in English.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct NotAllowed {
    pub code: &'static str,
    pub message: String,
}

impl NotAllowed {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// Who is working on a running campaign, and until when. Expired leases are taken over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub owner: String,
    #[serde(with = "time::serde::rfc3339")]
    pub until: OffsetDateTime,
}

/// The campaign's numbers. `targeted = delivered + sum(failed)` once completed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CampaignCounts {
    /// Distinct user IDs the segment returned, valid or not.
    pub targeted: u64,
    /// Of those, values that are not LINE user IDs (never sent; failed with `invalid_user_id`).
    pub invalid: u64,
    /// Recipients of the current round.
    pub round_targets: u64,
    /// Batches published in the current round.
    pub round_batches: u64,
    pub delivered: u64,
    pub failed: u64,
    #[serde(default)]
    pub failed_by_reason: std::collections::BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Campaign {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: CampaignId,
    pub name: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub content_id: ContentId,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub segment_id: SegmentId,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub channel_id: ChannelId,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub send_at: OffsetDateTime,
    pub status: CampaignStatus,
    /// Why the campaign is paused, canceled or failed (e.g. `quota_exhausted`).
    #[serde(default)]
    pub status_reason: Option<String>,
    /// The state a paused campaign returns to.
    #[serde(default)]
    pub paused_from: Option<CampaignStatus>,
    /// When it was last resumed. A quota error LINE gave before this no longer pauses the campaign: the
    /// operator resumed after it (e.g. having raised the quota).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub resumed_at: Option<OffsetDateTime>,
    /// Dry run: everything but sending (LINE's validate endpoint is called instead).
    #[serde(default)]
    pub dry_run: bool,
    /// The diff-retry round in progress (1 = first send).
    #[serde(default = "one")]
    pub round: u32,
    #[serde(default = "default_max_rounds")]
    pub max_rounds: u32,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub lease: Option<Lease>,
    #[serde(default)]
    pub counts: CampaignCounts,
    /// Objects (in the export bucket) holding the current round's recipients, in fan-out order.
    #[serde(default)]
    pub round_files: Vec<String>,
    /// Recipients of the current round logged when the scheduler last saw that number grow, and when: a round
    /// that stops growing for `SEGCAST_REDRIVE_SECONDS` is re-driven.
    #[serde(default)]
    pub round_logged: u64,
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub round_progress_at: Option<OffsetDateTime>,
    /// Not before this time does the scheduler look at the campaign again (backoff between rounds).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub next_check_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub started_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub completed_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: OffsetDateTime,
    /// The IANA time zone the marketer scheduled in (for display and quiet hours); `send_at` is absolute.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Local times in `time_zone` during which the campaign does not start (it waits for the window's end).
    #[serde(default)]
    pub quiet_hours: Option<QuietHours>,
    /// Who created it (console user), for the audit trail and the two-person rule.
    #[serde(default)]
    pub created_by: Option<String>,
    /// Large campaigns need a second user's approval before they can be scheduled.
    #[serde(default)]
    pub approval: Option<Approval>,
}

/// A window of local time (`HH:MM`-`HH:MM`, may wrap midnight) in which nothing starts sending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuietHours {
    pub start: String,
    pub end: String,
}

impl QuietHours {
    fn minutes(s: &str) -> Option<i64> {
        let (h, m) = s.split_once(':')?;
        let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
        ((0..24).contains(&h) && (0..60).contains(&m) && s.len() == 5).then_some(h * 60 + m)
    }

    /// Checks the window and the time zone; the error names the field.
    pub fn check(&self, time_zone: &str) -> Result<(), super::ParseError> {
        for (field, v) in [
            ("quiet_hours.start", &self.start),
            ("quiet_hours.end", &self.end),
        ] {
            if Self::minutes(v).is_none() {
                return Err(super::ParseError::new(
                    field,
                    format!("{v:?} is not a time of day as HH:MM (e.g. 21:00)"),
                ));
            }
        }
        if self.start == self.end {
            return Err(super::ParseError::new(
                "quiet_hours",
                "start and end are the same: the window would be empty",
            ));
        }
        jiff::tz::TimeZone::get(time_zone).map_err(|_| {
            super::ParseError::new(
                "time_zone",
                format!("{time_zone:?} is not a known time zone"),
            )
        })?;
        Ok(())
    }

    /// If `now` is inside the window (in `time_zone`), when the window ends; else `None`.
    pub fn holds_until(&self, time_zone: &str, now: OffsetDateTime) -> Option<OffsetDateTime> {
        let (start, end) = (Self::minutes(&self.start)?, Self::minutes(&self.end)?);
        let tz = jiff::tz::TimeZone::get(time_zone).ok()?;
        let ts = jiff::Timestamp::from_second(now.unix_timestamp()).ok()?;
        let local = ts.to_zoned(tz.clone());
        let m = i64::from(local.hour()) * 60 + i64::from(local.minute());
        let inside = if start < end {
            (start..end).contains(&m)
        } else {
            m >= start || m < end
        };
        if !inside {
            return None;
        }
        let wait = (end - m).rem_euclid(24 * 60);
        let until = local
            .checked_add(jiff::SignedDuration::from_mins(wait))
            .ok()?
            .with()
            .second(0)
            .subsec_nanosecond(0)
            .build()
            .ok()?;
        OffsetDateTime::from_unix_timestamp(until.timestamp().as_second()).ok()
    }
}

/// The two-person rule for large sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Approval {
    pub requested_by: String,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub requested_at: OffsetDateTime,
    /// Recipients the segment returned when approval was requested.
    pub recipients: u64,
    #[serde(default)]
    pub approved_by: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub approved_at: Option<OffsetDateTime>,
}

fn one() -> u32 {
    1
}

fn default_max_rounds() -> u32 {
    4
}

impl Campaign {
    /// A new draft: nothing run, counted or approved yet.
    pub fn draft(
        name: String,
        content_id: ContentId,
        segment_id: SegmentId,
        channel_id: ChannelId,
        send_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Self {
        Self {
            id: CampaignId::generate(),
            name,
            content_id,
            segment_id,
            channel_id,
            send_at,
            status: CampaignStatus::Draft,
            status_reason: None,
            paused_from: None,
            resumed_at: None,
            dry_run: false,
            round: 1,
            max_rounds: default_max_rounds(),
            lease: None,
            counts: CampaignCounts::default(),
            round_files: Vec::new(),
            round_logged: 0,
            round_progress_at: None,
            next_check_at: None,
            started_at: None,
            completed_at: None,
            updated_at: now,
            time_zone: None,
            quiet_hours: None,
            created_by: None,
            approval: None,
        }
    }

    /// Moves to `to` at `now`, refusing transitions the state machine does not allow.
    pub fn transition(
        &mut self,
        to: CampaignStatus,
        reason: Option<String>,
        now: OffsetDateTime,
    ) -> Result<(), NotAllowed> {
        if !self.status.can_become(to) {
            return Err(NotAllowed::new(
                "transition_not_allowed",
                format!(
                    "campaign {} cannot go from {} to {}",
                    self.id, self.status, to
                ),
            ));
        }
        if to == CampaignStatus::Paused {
            self.paused_from = Some(self.status);
        } else if self.status == CampaignStatus::Paused {
            self.paused_from = None;
        }
        self.status = to;
        self.status_reason = reason;
        self.updated_at = now;
        Ok(())
    }

    /// The marketer's pause: a scheduled or sending campaign stops where it is.
    pub fn pause(&mut self, reason: &str, now: OffsetDateTime) -> Result<(), NotAllowed> {
        if !(self.status.is_running() || self.status == CampaignStatus::Scheduled) {
            return Err(NotAllowed::new(
                "not_pausable",
                format!(
                    "campaign {} is {}: only a scheduled or sending campaign can be paused",
                    self.id, self.status
                ),
            ));
        }
        self.transition(CampaignStatus::Paused, Some(reason.to_owned()), now)
    }

    /// LINE said the channel's monthly quota is used up, for a request sent at `sent_at`: a running campaign
    /// pauses (`quota_exhausted`). Pausing twice (many handlers see it) is fine. A quota error older than the
    /// campaign's last resume does not pause it again (the operator resumed after it, e.g. having raised the
    /// quota; a handler's late write must not undo that). Whether the campaign is paused after is in `status`.
    pub fn pause_for_quota(&mut self, sent_at: OffsetDateTime, now: OffsetDateTime) {
        let stale = self.resumed_at.is_some_and(|r| r >= sent_at);
        if self.status.is_running() && !stale {
            // Cannot fail: a running campaign may always pause.
            let _ = self.transition(CampaignStatus::Paused, Some("quota_exhausted".into()), now);
        }
    }

    /// Resumes a paused campaign where it was (its parked batches are re-published by the scheduler).
    pub fn resume(&mut self, now: OffsetDateTime) -> Result<(), NotAllowed> {
        let Some(back) = self
            .paused_from
            .filter(|_| self.status == CampaignStatus::Paused)
        else {
            return Err(NotAllowed::new(
                "not_paused",
                format!("campaign {} is {}, not paused", self.id, self.status),
            ));
        };
        self.transition(back, None, now)?;
        self.resumed_at = Some(now);
        self.lease = None;
        self.next_check_at = None;
        // The time paused is not a stall of the round.
        self.round_progress_at = None;
        Ok(())
    }

    /// Cancels a campaign. Batches still in Pub/Sub are settled `failed/canceled` by the handlers; after
    /// `settle_after` (one ack deadline, so no push is still sending) the scheduler settles everything else.
    pub fn cancel(
        &mut self,
        now: OffsetDateTime,
        settle_after: std::time::Duration,
    ) -> Result<(), NotAllowed> {
        if self.status.is_final() {
            return Err(NotAllowed::new(
                "already_ended",
                format!("campaign {} is already {}", self.id, self.status),
            ));
        }
        let started = self.started_at.is_some();
        self.transition(CampaignStatus::Canceled, Some("canceled".into()), now)?;
        self.lease = None;
        if started {
            self.next_check_at = Some(now + settle_after);
        } else {
            // Nothing was extracted or sent: there is nothing to settle.
            self.completed_at = Some(now);
        }
        Ok(())
    }

    /// Needs the scheduler: due and scheduled, running, or canceled with work left to account for.
    pub fn needs_scheduler(&self) -> bool {
        self.status == CampaignStatus::Scheduled
            || self.status.is_running()
            || (self.status == CampaignStatus::Canceled && self.completed_at.is_none())
    }

    pub fn lease_is_free(&self, owner: &str, now: OffsetDateTime) -> bool {
        match &self.lease {
            None => true,
            Some(l) => l.owner == owner || l.until <= now,
        }
    }
}

#[cfg(test)]
mod quiet_hours_tests {
    use super::QuietHours;
    use time::macros::datetime;

    fn q(start: &str, end: &str) -> QuietHours {
        QuietHours {
            start: start.into(),
            end: end.into(),
        }
    }

    #[test]
    fn a_window_across_midnight_holds_until_its_end_in_the_local_zone() {
        let night = q("21:00", "08:00");
        // 23:30 in Tokyo (UTC+9) is 14:30 UTC: held until 08:00 Tokyo = 23:00 UTC.
        assert_eq!(
            night.holds_until("Asia/Tokyo", datetime!(2026-11-23 14:30 UTC)),
            Some(datetime!(2026-11-23 23:00 UTC))
        );
        // 12:00 Tokyo is outside the window.
        assert_eq!(
            night.holds_until("Asia/Tokyo", datetime!(2026-11-23 03:00 UTC)),
            None
        );
        // 07:59 Tokyo is still inside.
        assert_eq!(
            night.holds_until("Asia/Tokyo", datetime!(2026-11-23 22:59 UTC)),
            Some(datetime!(2026-11-23 23:00 UTC))
        );
    }

    #[test]
    fn a_daytime_window_and_bad_input() {
        let lunch = q("12:00", "13:00");
        assert_eq!(
            lunch.holds_until("UTC", datetime!(2026-11-23 12:10 UTC)),
            Some(datetime!(2026-11-23 13:00 UTC))
        );
        assert_eq!(
            lunch.holds_until("UTC", datetime!(2026-11-23 13:00 UTC)),
            None
        );
        assert_eq!(
            q("25:00", "08:00").check("UTC").unwrap_err().field,
            "quiet_hours.start"
        );
        assert_eq!(
            q("21:00", "8:00").check("UTC").unwrap_err().field,
            "quiet_hours.end"
        );
        assert_eq!(
            q("21:00", "21:00").check("UTC").unwrap_err().field,
            "quiet_hours"
        );
        assert_eq!(
            q("21:00", "08:00").check("Mars/Base").unwrap_err().field,
            "time_zone"
        );
        assert!(q("21:00", "08:00").check("Europe/Berlin").is_ok());
    }
}

#[cfg(test)]
mod tests {
    use super::CampaignStatus::*;

    #[test]
    fn happy_path_is_allowed() {
        let path = [
            Draft, Scheduled, Extracting, FanningOut, Delivering, Retrying, FanningOut, Delivering,
            Completed,
        ];
        for w in path.windows(2) {
            assert!(w[0].can_become(w[1]), "{} -> {}", w[0], w[1]);
        }
    }

    #[test]
    fn final_states_are_final_and_skips_are_refused() {
        for f in [Completed, Canceled, Failed] {
            for to in [
                Draft, Scheduled, Extracting, Delivering, Paused, Canceled, Failed,
            ] {
                assert!(!f.can_become(to), "{f} -> {to}");
            }
        }
        assert!(!Scheduled.can_become(Delivering));
        assert!(!Draft.can_become(Extracting));
        assert!(!Draft.can_become(Paused));
        assert!(Delivering.can_become(Paused) && Paused.can_become(Delivering));
    }
}
