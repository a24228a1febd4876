//! A batch: the unit of work published to a delivery topic and handled by one push.
//!
//! Batches are deterministic: the same campaign, round, file and line offset always give the same batch id and
//! the same recipients, and the LINE retry keys are derived from the batch id. Re-publishing a batch (after a
//! scheduler crash) or Pub/Sub redelivering it therefore can never make LINE accept a recipient twice.

use super::{CampaignId, ChannelId, Messages, ParseError, UserId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The most recipients a batch holds (`SEGCAST_MULTICAST_BATCH` and `SEGCAST_PUSH_BATCH` are capped to it; the
/// delivery handler refuses bigger ones).
pub const MAX_RECIPIENTS: usize = 10_000;

/// `<campaign>.r<round>.f<file>.o<line offset>`: which campaign, round, export file and first line of that file
/// the batch holds. Checked when parsed or deserialised, so a stored or received id always names its parts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct BatchId(String);

impl BatchId {
    pub fn new(campaign: &CampaignId, round: u32, file: usize, offset: u64) -> Self {
        Self(format!("{campaign}.r{round}.f{file}.o{offset}"))
    }

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let bad = || {
            ParseError::new(
                "batch_id",
                format!("{s:?} is not <campaign>.r<round>.f<file>.o<line>"),
            )
        };
        let mut parts = s.split('.');
        let (Some(campaign), Some(round), Some(file), Some(offset), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(bad());
        };
        let number = |part: &str, tag: char| -> Option<u64> {
            let digits = part.strip_prefix(tag)?;
            // Canonical decimal only: one id per batch.
            (!digits.is_empty() && (digits == "0" || !digits.starts_with('0')))
                .then(|| digits.parse().ok())
                .flatten()
        };
        let campaign = CampaignId::parse(campaign).map_err(|_| bad())?;
        let round = number(round, 'r')
            .and_then(|r| u32::try_from(r).ok())
            .ok_or_else(bad)?;
        let file = number(file, 'f')
            .and_then(|f| usize::try_from(f).ok())
            .ok_or_else(bad)?;
        let offset = number(offset, 'o').ok_or_else(bad)?;
        Ok(Self::new(&campaign, round, file, offset))
    }

    /// The campaign and round the id names.
    pub fn campaign_and_round(&self) -> (&str, u32) {
        let mut parts = self.0.split('.');
        let campaign = parts.next().unwrap_or_default();
        let round = parts
            .next()
            .and_then(|r| r.strip_prefix('r'))
            .and_then(|r| r.parse().ok())
            .unwrap_or_default();
        (campaign, round)
    }
}

validated_string!(BatchId);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryMode {
    /// Same messages for everyone: up to 500 recipients per request.
    Multicast,
    /// Personalised messages: one request per recipient.
    Push,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recipient {
    pub user_id: UserId,
    /// Segment columns for personalised content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attrs: Option<serde_json::Map<String, Value>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub id: BatchId,
    pub campaign_id: CampaignId,
    pub round: u32,
    pub channel_id: ChannelId,
    pub mode: DeliveryMode,
    #[serde(default)]
    pub dry_run: bool,
    /// The campaign's messages (placeholders unrendered), carried so a handler needs no lookup to send.
    pub messages: Messages,
    pub recipients: Vec<Recipient>,
}

/// segcast's UUIDv5 namespace for LINE retry keys.
const RETRY_KEY_NAMESPACE: uuid::Uuid = uuid::uuid!("6c1f7b2e-5d0a-4f4e-9a53-2f6f3c1f0b8d");

impl Batch {
    /// What a batch must be to be handled, as the fan-out makes them: 1 to [`MAX_RECIPIENTS`] recipients, each
    /// once, and an id of its own campaign and round (round 1 or later). The messages are valid by type.
    /// The reason is for the log.
    pub fn check(&self) -> Result<(), String> {
        let n = self.recipients.len();
        if n == 0 {
            return Err("batch has no recipients".into());
        }
        if n > MAX_RECIPIENTS {
            return Err(format!(
                "batch has {n} recipients, more than {MAX_RECIPIENTS}"
            ));
        }
        if self.round == 0
            || self.id.campaign_and_round() != (self.campaign_id.as_str(), self.round)
        {
            return Err(format!(
                "batch id {:?} is not a batch of round {} of campaign {}",
                self.id.as_str(),
                self.round,
                self.campaign_id
            ));
        }
        let mut seen = std::collections::HashSet::with_capacity(n);
        if let Some(dup) = self.recipients.iter().find(|r| !seen.insert(&r.user_id)) {
            return Err(format!(
                "recipient {} appears twice in the batch",
                dup.user_id
            ));
        }
        Ok(())
    }

    /// The `X-Line-Retry-Key` for request `part` of this batch (a multicast chunk index or a push recipient).
    pub fn retry_key(&self, part: &str) -> uuid::Uuid {
        uuid::Uuid::new_v5(
            &RETRY_KEY_NAMESPACE,
            format!("{}/{part}", self.id).as_bytes(),
        )
    }
}

/// A valid multicast batch of round 1 of `campaign` with `n` recipients (unit tests across the crate).
#[cfg(test)]
pub(crate) fn sample(campaign: &str, n: usize) -> Batch {
    let c = CampaignId::parse(campaign).unwrap();
    Batch {
        id: BatchId::new(&c, 1, 0, 0),
        campaign_id: c,
        round: 1,
        channel_id: ChannelId::parse("1656000001").unwrap(),
        mode: DeliveryMode::Multicast,
        dry_run: false,
        messages: Messages::parse(&serde_json::json!([{"type": "text", "text": "hi"}])).unwrap(),
        recipients: (0..n)
            .map(|i| Recipient {
                user_id: UserId::parse(&format!("U{i:032x}")).unwrap(),
                attrs: None,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_ids_and_retry_keys_are_deterministic() {
        let c = CampaignId::parse("c_demo").unwrap();
        let a = BatchId::new(&c, 1, 3, 1500);
        assert_eq!(a.as_str(), "c_demo.r1.f3.o1500");
        let batch = |id: BatchId| Batch {
            id,
            campaign_id: c.clone(),
            round: 1,
            channel_id: ChannelId::parse("1").unwrap(),
            mode: DeliveryMode::Multicast,
            dry_run: false,
            messages: Messages::parse(&serde_json::json!([{"type": "text", "text": "hi"}]))
                .unwrap(),
            recipients: vec![],
        };
        let b1 = batch(a.clone());
        let b2 = batch(a);
        assert_eq!(b1.retry_key("0"), b2.retry_key("0"));
        assert_ne!(b1.retry_key("0"), b1.retry_key("1"));
        let other = batch(BatchId::new(&c, 2, 3, 1500));
        assert_ne!(
            b1.retry_key("0"),
            other.retry_key("0"),
            "a new round gets new keys"
        );
    }

    #[test]
    fn batch_ids_parse_only_in_their_own_shape() {
        let id = BatchId::parse("c_demo.r2.f0.o4000").unwrap();
        assert_eq!(id.campaign_and_round(), ("c_demo", 2));
        assert_eq!(
            id,
            BatchId::new(&CampaignId::parse("c_demo").unwrap(), 2, 0, 4000)
        );
        for bad in [
            "",
            "c_demo",
            "c_demo.r1.f0",
            "c_demo.r1.f0.o1.x",
            "c_demo.1.f0.o1",
            "c_demo.r01.f0.o1",
            "c_demo.r1.f0.o",
            "c_demo.r-1.f0.o1",
            "C-demo.r1.f0.o1",
            "c_demo.r99999999999.f0.o1",
        ] {
            assert!(BatchId::parse(bad).is_err(), "{bad:?} accepted");
            let json = serde_json::to_string(bad).unwrap();
            assert!(
                serde_json::from_str::<BatchId>(&json).is_err(),
                "{bad:?} deserialised"
            );
        }
    }

    #[test]
    fn a_batch_is_checked_as_the_fan_out_makes_it() {
        let c = CampaignId::parse("c_demo").unwrap();
        let user = |i: usize| Recipient {
            user_id: UserId::parse(&format!("U{i:032x}")).unwrap(),
            attrs: None,
        };
        let ok = sample("c_demo", 2);
        assert_eq!(ok.check(), Ok(()));
        let refused = |b: Batch, why: &str| {
            let e = b.check().unwrap_err();
            assert!(e.contains(why), "{e:?} does not say {why:?}");
        };
        refused(
            Batch {
                recipients: vec![],
                ..ok.clone()
            },
            "no recipients",
        );
        refused(
            Batch {
                recipients: (0..=MAX_RECIPIENTS).map(user).collect(),
                ..ok.clone()
            },
            "more than",
        );
        refused(
            Batch {
                recipients: vec![user(1), user(1)],
                ..ok.clone()
            },
            "twice",
        );
        refused(
            Batch {
                round: 2,
                ..ok.clone()
            },
            "not a batch of round 2",
        );
        refused(
            Batch {
                id: BatchId::new(&c, 0, 0, 0),
                round: 0,
                ..ok.clone()
            },
            "round 0",
        );
        refused(
            Batch {
                campaign_id: CampaignId::parse("c_other").unwrap(),
                ..ok.clone()
            },
            "campaign c_other",
        );
    }
}
