//! A batch on the wire: the one place that builds batches, publishes them over the N delivery topics and
//! decodes and checks what a push brings back. The fan-out, the re-drive of a stalled round and the re-publish
//! of parked batches all publish through [`BatchTopics`]; the delivery handler decodes with [`decode_push`].
//!
//! The Pub/Sub message is the batch's JSON (`crate::domain::Batch`), with the batch id as the `batch_id`
//! attribute (for logs and filters). A push wraps it in Pub/Sub's envelope, base64-encoded.

use crate::ctx::Ctx;
use crate::domain::{Batch, BatchId, Campaign, DeliveryMode, Messages, Recipient};
use anyhow::{Context, anyhow};
use base64::Engine;
use google_cloud_pubsub::client::Publisher;
use google_cloud_pubsub::model::Message;
use google_cloud_pubsub::publisher::PublishFuture;
use serde::Deserialize;

/// Pub/Sub push bodies are at most 10 MB of message plus base64 and envelope.
pub const MAX_PUSH_BODY: usize = 16 * 1024 * 1024;

/// The batch of `campaign`'s current round that starts at line `start_line` of its round file `file`.
pub fn build(
    campaign: &Campaign,
    file: usize,
    start_line: u64,
    mode: DeliveryMode,
    messages: &Messages,
    recipients: Vec<Recipient>,
) -> Batch {
    Batch {
        id: BatchId::new(&campaign.id, campaign.round, file, start_line),
        campaign_id: campaign.id.clone(),
        round: campaign.round,
        channel_id: campaign.channel_id.clone(),
        mode,
        dry_run: campaign.dry_run,
        messages: messages.clone(),
        recipients,
    }
}

/// The Pub/Sub message for `batch`.
pub fn encode(batch: &Batch) -> anyhow::Result<Message> {
    let data = serde_json::to_vec(batch).context("encoding a batch")?;
    Ok(Message::new()
        .set_data(data)
        .set_attributes([("batch_id", batch.id.to_string())]))
}

/// The delivery topics, published to in turn: batch `n` goes to topic `n mod N`.
pub struct BatchTopics {
    publishers: Vec<Publisher>,
    /// The number of the next batch published.
    next: u64,
}

impl BatchTopics {
    /// Publishers for every delivery topic; the first batch published is batch number `first` (a resumed
    /// fan-out continues the rotation where its checkpoint is).
    pub async fn open(ctx: &Ctx, first: u64) -> anyhow::Result<Self> {
        let n = ctx.settings.delivery_topics;
        let mut publishers = Vec::with_capacity(n);
        for i in 0..n {
            publishers.push(
                ctx.gcp
                    .pubsub
                    .publisher(&ctx.settings.delivery_topic(i))
                    .await?,
            );
        }
        Ok(Self {
            publishers,
            next: first,
        })
    }

    /// Publishes `batch` to the next topic; the future resolves once Pub/Sub has it.
    pub fn publish(&mut self, batch: &Batch) -> anyhow::Result<PublishFuture> {
        let topic = (self.next % self.publishers.len() as u64) as usize;
        self.next += 1;
        Ok(self.publishers[topic].publish(encode(batch)?))
    }

    /// Publishes every batch and waits until Pub/Sub has them all.
    pub async fn publish_all(&mut self, batches: &[Batch]) -> anyhow::Result<()> {
        let futures = batches
            .iter()
            .map(|b| self.publish(b))
            .collect::<anyhow::Result<Vec<_>>>()?;
        for f in futures {
            f.await.map_err(|e| anyhow!("publishing a batch: {e}"))?;
        }
        Ok(())
    }
}

/// The push envelope, borrowing from the body where it can: the base64 data is the bulk of it (a copy per
/// batch in flight is memory the handler does not need).
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    message: PushMessage<'a>,
}

#[derive(Deserialize)]
struct PushMessage<'a> {
    #[serde(default, borrow)]
    data: std::borrow::Cow<'a, str>,
    #[serde(default, rename = "messageId")]
    message_id: String,
}

/// A decoded and checked push: the batch and the Pub/Sub message id.
#[derive(Debug)]
pub struct Pushed {
    pub batch: Batch,
    pub message_id: String,
}

/// Decodes a Pub/Sub push body (the JSON envelope, base64 `message.data`, the batch's JSON) and checks the batch
/// as the fan-out makes them ([`Batch::check`]; ids and messages are checked as they are deserialised). Anything
/// else is refused here, before any lookup or request: the reason is for the log. Pure, and never panics
/// (fuzzed).
pub fn decode_push(body: &[u8]) -> Result<Pushed, String> {
    let env: Envelope =
        serde_json::from_slice(body).map_err(|e| format!("not a Pub/Sub push envelope: {e}"))?;
    let data = base64::engine::general_purpose::STANDARD
        .decode(env.message.data.as_bytes())
        .map_err(|e| format!("message data is not base64: {e}"))?;
    let mut batch: Batch =
        serde_json::from_slice(&data).map_err(|e| format!("message is not a batch: {e}"))?;
    // The array grew by doubling while parsed: up to twice the room it needs, held while the batch is sent.
    batch.recipients.shrink_to_fit();
    batch.check()?;
    Ok(Pushed {
        batch,
        message_id: env.message.message_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch() -> Batch {
        crate::domain::batch::sample("c_wire", 1)
    }

    fn push_body(data: &[u8]) -> Vec<u8> {
        let data = base64::engine::general_purpose::STANDARD.encode(data);
        serde_json::to_vec(&serde_json::json!({"message": {"data": data, "messageId": "m1"}}))
            .unwrap()
    }

    #[test]
    fn what_is_published_decodes_to_the_same_batch() {
        let b = batch();
        let msg = encode(&b).unwrap();
        assert_eq!(
            msg.attributes.get("batch_id").map(String::as_str),
            Some(b.id.as_str())
        );
        let pushed = decode_push(&push_body(&msg.data)).unwrap();
        assert_eq!(pushed.batch, b);
        assert_eq!(pushed.message_id, "m1");
    }

    #[test]
    fn pushes_that_are_not_batches_are_refused_with_a_reason() {
        let mut v = serde_json::to_value(batch()).unwrap();
        v["messages"] = serde_json::json!([{"type": "text", "text": ""}]);
        let e = decode_push(&push_body(&serde_json::to_vec(&v).unwrap())).unwrap_err();
        assert!(
            e.contains("not a batch") && e.contains("not valid LINE messages"),
            "{e}"
        );
        let mut v = serde_json::to_value(batch()).unwrap();
        v["id"] = serde_json::json!("c_wire.r1.f0");
        assert!(decode_push(&push_body(&serde_json::to_vec(&v).unwrap())).is_err());
        let mut v = serde_json::to_value(batch()).unwrap();
        v["id"] = serde_json::json!("c_other.r1.f0.o0");
        let e = decode_push(&push_body(&serde_json::to_vec(&v).unwrap())).unwrap_err();
        assert!(
            e.contains("not a batch of round 1 of campaign c_wire"),
            "{e}"
        );
        assert!(decode_push(b"{}").is_err());
        assert!(decode_push(br#"{"message":{"data":"***"}}"#).is_err());
    }
}
