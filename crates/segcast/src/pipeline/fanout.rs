//! Step 4: fan-out. Streams a round's exported files (chunk by chunk: memory does not grow with the segment)
//! and publishes batches round-robin over the N delivery topics.
//!
//! Batches are deterministic: a batch starts at a line of a file and holds the next `batch size` lines of
//! that file, so (campaign, round, file, line) names it and fixes its recipients and LINE retry keys. Every
//! [`CHECKPOINT_EVERY`] batches the publishes are awaited and the position (file, byte offset, line) is saved
//! in Datastore; a scheduler that crashes or is redeployed resumes from the last checkpoint. Batches published
//! after it are published again with the same ids, which the handlers' dedupe and LINE's retry keys make
//! harmless.

use super::batch_wire::{self, BatchTopics};
use super::claim::{AdvanceError, advance};
use super::export_file::{LineSplitter, Next, is_blank, parse_recipient};
use super::records::FanoutCheckpoint;
use crate::catalog::Content;
use crate::ctx::Ctx;
use crate::domain::{Batch, Campaign, CampaignStatus, DeliveryMode, Messages, Recipient};
use anyhow::{Context, anyhow};
use std::time::Duration;
use tokio::time::Instant;

/// Batches between checkpoints: bounds both the re-publishing after a crash and the publishes in flight.
pub const CHECKPOINT_EVERY: u64 = 50;

pub enum FanoutResult {
    /// Every batch of the round is published; the campaign is `delivering`.
    Completed(Box<Campaign>),
    /// The time budget ran out; the checkpoint holds the position.
    Yielded,
}

/// Lease renewals (which also notice a pause or cancel) during a fan-out are at most this often.
const RENEW_EVERY: Duration = Duration::from_secs(1);

/// Publishes in flight, and the checkpoint being saved behind them. A checkpoint is saved only once every
/// publish before it is confirmed, in the background, while the next group of batches is published; the
/// next checkpoint waits for it, so checkpoints stay in order and at most two groups are in flight.
struct Pending {
    futures: Vec<google_cloud_pubsub::publisher::PublishFuture>,
    saving: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Pending {
    /// Saves `ckpt` once the publishes so far are confirmed, without waiting for that.
    async fn checkpoint(&mut self, ctx: &Ctx, ckpt: &FanoutCheckpoint) -> anyhow::Result<()> {
        self.settled().await?;
        let futures = std::mem::take(&mut self.futures);
        let (ctx, ckpt) = (ctx.clone(), ckpt.clone());
        self.saving = Some(tokio::spawn(async move {
            for f in futures {
                f.await.map_err(|e| anyhow!("publishing a batch: {e}"))?;
            }
            ctx.gcp.datastore.upsert(&ckpt).await
        }));
        Ok(())
    }

    /// Waits for the checkpoint being saved, if any.
    async fn settled(&mut self) -> anyhow::Result<()> {
        if let Some(t) = self.saving.take() {
            t.await.context("checkpoint task")??;
        }
        Ok(())
    }

    /// Waits for every publish and checkpoint so far.
    async fn wait(&mut self) -> anyhow::Result<()> {
        self.settled().await?;
        for f in self.futures.drain(..) {
            f.await.map_err(|e| anyhow!("publishing a batch: {e}"))?;
        }
        Ok(())
    }
}

/// How a campaign's recipients are batched: the mode, the batch size and the messages every batch carries.
async fn batching(
    ctx: &Ctx,
    campaign: &Campaign,
) -> anyhow::Result<(DeliveryMode, usize, Messages)> {
    let content: Content = ctx
        .gcp
        .datastore
        .get(campaign.content_id.as_str())
        .await?
        .ok_or_else(|| {
            anyhow!(
                "content {} of campaign {} does not exist",
                campaign.content_id,
                campaign.id
            )
        })?;
    let mode = if content.messages.is_personalized() {
        DeliveryMode::Push
    } else {
        DeliveryMode::Multicast
    };
    let batch_size = match mode {
        DeliveryMode::Multicast => ctx.settings.delivery.multicast_batch,
        DeliveryMode::Push => ctx.settings.delivery.push_batch,
    };
    Ok((mode, batch_size, content.messages))
}

/// Batches looked up and re-published together by [`redrive`] (bounds its memory).
const REDRIVE_GROUP: usize = 20;

/// Re-publishes the batches of the campaign's current round that are not done: a round that has stopped
/// progressing (a batch that Pub/Sub gave up delivering, e.g. after its push target was gone for a while) must
/// not stall the campaign forever. The batches are rebuilt from the round's files exactly as the fan-out built
/// them (same ids, recipients and retry keys), so a copy still alive in Pub/Sub is harmless: the handlers'
/// dedupe and LINE's retry keys make the second one a no-op. Returns (batches re-published, batches in the round).
pub async fn redrive(ctx: &Ctx, campaign: &Campaign) -> anyhow::Result<(u64, u64)> {
    let (mode, batch_size, messages) = batching(ctx, campaign).await?;
    let mut group: Vec<Batch> = Vec::with_capacity(REDRIVE_GROUP);
    let mut topics = BatchTopics::open(ctx, 0).await?;
    let (mut total, mut published) = (0u64, 0u64);
    for (file, object) in campaign.round_files.iter().enumerate() {
        let mut batches = FileBatches::open(ctx, object, 0, 0, mode, batch_size).await?;
        while let Some(cut) = batches.next().await? {
            group.push(cut.into_batch(campaign, file, mode, &messages));
            total += 1;
            if group.len() == REDRIVE_GROUP {
                published += republish_undone(ctx, &mut topics, &mut group).await?;
            }
        }
    }
    published += republish_undone(ctx, &mut topics, &mut group).await?;
    Ok((published, total))
}

/// Publishes the batches of `group` that have no `BatchDone`, and empties it.
async fn republish_undone(
    ctx: &Ctx,
    topics: &mut BatchTopics,
    group: &mut Vec<Batch>,
) -> anyhow::Result<u64> {
    let ids: Vec<String> = group.iter().map(|b| b.id.to_string()).collect();
    let done = ctx
        .gcp
        .datastore
        .get_many::<super::records::BatchDone>(&ids)
        .await?;
    group.retain(|b| !done.contains_key(b.id.as_str()));
    topics.publish_all(group).await?;
    let n = group.len() as u64;
    group.clear();
    Ok(n)
}

/// One round file cut into batches from a position (the start, or a checkpoint, which is always on a batch
/// boundary): the same lines, blank-line rule and batch boundaries whichever it starts from, so [`run`] and
/// [`redrive`] build identical batches. Reads the file chunk by chunk (memory bounded by a batch).
struct FileBatches {
    object: String,
    reader: crate::gcp::storage::ObjectReader,
    lines: LineSplitter,
    line_no: u64,
    mode: DeliveryMode,
    batch_size: usize,
}

/// A batch's recipients, the line it starts at, and the position after it (where a checkpoint would resume).
struct Cut {
    start_line: u64,
    recipients: Vec<Recipient>,
    next_byte: u64,
    next_line: u64,
}

impl Cut {
    fn into_batch(
        self,
        campaign: &Campaign,
        file: usize,
        mode: DeliveryMode,
        messages: &Messages,
    ) -> Batch {
        batch_wire::build(
            campaign,
            file,
            self.start_line,
            mode,
            messages,
            self.recipients,
        )
    }
}

impl FileBatches {
    async fn open(
        ctx: &Ctx,
        object: &str,
        byte_offset: u64,
        line: u64,
        mode: DeliveryMode,
        batch_size: usize,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            object: object.to_owned(),
            reader: ctx.gcp.storage.read_from(object, byte_offset).await?,
            lines: LineSplitter::new(byte_offset),
            line_no: line,
            mode,
            batch_size,
        })
    }

    /// The next batch, or `None` at the end of the file.
    async fn next(&mut self) -> anyhow::Result<Option<Cut>> {
        let mut recipients: Vec<Recipient> = Vec::with_capacity(self.batch_size);
        let mut start_line = self.line_no;
        while recipients.len() < self.batch_size {
            let next = self
                .lines
                .next_line()
                .map_err(|e| anyhow!("{} line {}: {e}", self.object, self.line_no))?;
            match next {
                Next::NeedMore => match self.reader.next_chunk().await {
                    Some(chunk) => self.lines.push(&chunk?),
                    None => self.lines.finish(),
                },
                Next::End => break,
                Next::Line(l) => {
                    if !is_blank(l) {
                        if recipients.is_empty() {
                            start_line = self.line_no;
                        }
                        recipients.push(
                            parse_recipient(l, self.mode).map_err(|e| {
                                anyhow!("{} line {}: {e}", self.object, self.line_no)
                            })?,
                        );
                    }
                    self.line_no += 1;
                }
            }
        }
        Ok((!recipients.is_empty()).then(|| Cut {
            start_line,
            recipients,
            next_byte: self.lines.position(),
            next_line: self.line_no,
        }))
    }
}

/// Files read ahead of the one being published: reading (waiting on Cloud Storage, cutting lines) overlaps
/// with encoding and with waiting for Pub/Sub, and several files stream at once. Each reader holds at most
/// [`READ_AHEAD_BATCHES`] cut batches, so memory stays bounded by a few batches per file.
const READ_AHEAD_FILES: usize = 3;
const READ_AHEAD_BATCHES: usize = 2;

/// What a file's reader sends: its batches in order, then `End` (a reader that stops without `End` failed).
enum Read {
    Cut(Cut),
    End,
}

/// The readers of the next files, in file order. Batches are still published strictly in file and line order,
/// so checkpoints stay (file, byte offset, line) of a prefix of the work list.
struct ReadAhead<'c> {
    ctx: &'c Ctx,
    campaign: &'c Campaign,
    mode: DeliveryMode,
    batch_size: usize,
    /// The next file to start a reader for.
    next_file: usize,
    readers: std::collections::VecDeque<FileReader>,
}

struct FileReader {
    rx: tokio::sync::mpsc::Receiver<anyhow::Result<Read>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FileReader {
    /// Ends the reader if the fan-out stops early (yields at its budget, fails, or is itself dropped).
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<'c> ReadAhead<'c> {
    /// Readers from `ckpt`'s position on.
    fn new(
        ctx: &'c Ctx,
        campaign: &'c Campaign,
        ckpt: &FanoutCheckpoint,
        mode: DeliveryMode,
        batch_size: usize,
    ) -> Self {
        let mut ra = Self {
            ctx,
            campaign,
            mode,
            batch_size,
            next_file: ckpt.file,
            readers: Default::default(),
        };
        ra.fill(ckpt.byte_offset, ckpt.line);
        ra
    }

    /// Starts readers until [`READ_AHEAD_FILES`] run; the first one started begins at (`byte`, `line`).
    fn fill(&mut self, mut byte: u64, mut line: u64) {
        while self.readers.len() < READ_AHEAD_FILES
            && self.next_file < self.campaign.round_files.len()
        {
            let (tx, rx) = tokio::sync::mpsc::channel(READ_AHEAD_BATCHES);
            let (ctx, object) = (
                self.ctx.clone(),
                self.campaign.round_files[self.next_file].clone(),
            );
            let (mode, batch_size) = (self.mode, self.batch_size);
            let task = tokio::spawn(async move {
                let result = async {
                    let mut batches =
                        FileBatches::open(&ctx, &object, byte, line, mode, batch_size).await?;
                    while let Some(cut) = batches.next().await? {
                        if tx.send(Ok(Read::Cut(cut))).await.is_err() {
                            return Ok(());
                        }
                    }
                    anyhow::Ok(())
                }
                .await;
                let _ = tx.send(result.map(|()| Read::End)).await;
            });
            self.readers.push_back(FileReader { rx, task });
            self.next_file += 1;
            (byte, line) = (0, 0);
        }
    }

    /// The next batch of the current file, or `None` at its end (then the next call reads the next file).
    async fn next(&mut self) -> anyhow::Result<Option<Cut>> {
        let reader = self
            .readers
            .front_mut()
            .ok_or_else(|| anyhow!("fan-out read past the last file"))?;
        match reader.rx.recv().await {
            Some(Ok(Read::Cut(cut))) => Ok(Some(cut)),
            Some(Ok(Read::End)) => {
                self.readers.pop_front();
                self.fill(0, 0);
                Ok(None)
            }
            Some(Err(e)) => Err(e),
            None => Err(anyhow!(
                "a fan-out file reader stopped before the end of its file"
            )),
        }
    }
}

/// Renews the fan-out's lease (which also notices a pause or cancel) at most every [`RENEW_EVERY`].
struct LeaseRenewal {
    last: Instant,
}

impl LeaseRenewal {
    async fn renew_if_due(
        &mut self,
        ctx: &Ctx,
        campaign: &Campaign,
        owner: &str,
        lease: Duration,
    ) -> Result<(), AdvanceError> {
        if self.last.elapsed() >= RENEW_EVERY {
            advance(
                ctx,
                &campaign.id,
                owner,
                CampaignStatus::FanningOut,
                lease,
                |_| Ok(()),
            )
            .await?;
            self.last = Instant::now();
        }
        Ok(())
    }
}

pub async fn run(
    ctx: &Ctx,
    campaign: &Campaign,
    owner: &str,
    lease: Duration,
    deadline: Instant,
) -> Result<FanoutResult, AdvanceError> {
    let ds = &ctx.gcp.datastore;
    let key = FanoutCheckpoint::key_for(&campaign.id, campaign.round);
    let mut ckpt: FanoutCheckpoint = ds.get(&key).await?.unwrap_or(FanoutCheckpoint {
        key: key.clone(),
        ..Default::default()
    });
    let (mode, batch_size, messages) = batching(ctx, campaign).await?;
    // The rotation over the topics continues from the checkpoint: batch n goes to topic n mod N.
    let mut topics = BatchTopics::open(ctx, ckpt.batches).await?;
    if ckpt.batches > 0 && !ckpt.done {
        tracing::info!(campaign = %campaign.id, batches = ckpt.batches, "fan-out resumes from its checkpoint");
        ckpt.resumed_at.push(ckpt.batches);
    }
    let pace = match ctx.settings.delivery.fanout_rate {
        0 => None,
        r => Some(Duration::from_secs_f64(1.0 / f64::from(r))),
    };
    let started = Instant::now();
    let mut published_here: u32 = 0;
    let mut pending = Pending {
        futures: Vec::new(),
        saving: None,
    };
    let mut lease_renewal = LeaseRenewal {
        last: Instant::now(),
    };
    // Where the fan-out's time goes (logged at the end): reading and cutting the files, encoding batches, and
    // waiting for Pub/Sub to confirm publishes (checkpoints wait for the publishes before them).
    let (mut read, mut encode, mut wait) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);

    let mut files = ReadAhead::new(ctx, campaign, &ckpt, mode, batch_size);
    while !ckpt.done && ckpt.file < campaign.round_files.len() {
        let file = ckpt.file;
        loop {
            let t = Instant::now();
            let next = files.next().await?;
            read += t.elapsed();
            let Some(cut) = next else { break };
            let t = Instant::now();
            let (next_byte, next_line) = (cut.next_byte, cut.next_line);
            let batch = cut.into_batch(campaign, file, mode, &messages);
            let n = batch.recipients.len() as u64;
            let publish = topics.publish(&batch)?;
            encode += t.elapsed();
            pending.futures.push(publish);
            ckpt.batches += 1;
            ckpt.recipients += n;
            published_here += 1;
            if let Some(p) = pace {
                tokio::time::sleep_until(started + p * published_here).await;
            }
            // A checkpoint sits on a batch boundary: the next batch starts at the next line.
            if ckpt.batches.is_multiple_of(CHECKPOINT_EVERY) {
                ckpt.byte_offset = next_byte;
                ckpt.line = next_line;
                let t = Instant::now();
                pending.checkpoint(ctx, &ckpt).await?;
                wait += t.elapsed();
                lease_renewal
                    .renew_if_due(ctx, campaign, owner, lease)
                    .await?;
                if Instant::now() >= deadline || ctx.stopping.is_cancelled() {
                    pending.wait().await?;
                    tracing::info!(campaign = %campaign.id, batches = ckpt.batches, "{}", crate::telemetry::events::FANOUT_YIELDS);
                    return Ok(FanoutResult::Yielded);
                }
            }
        }
        // The file is done: the next drive starts at the next one.
        ckpt.file = file + 1;
        ckpt.byte_offset = 0;
        ckpt.line = 0;
        let t = Instant::now();
        pending.checkpoint(ctx, &ckpt).await?;
        wait += t.elapsed();
        lease_renewal
            .renew_if_due(ctx, campaign, owner, lease)
            .await?;
    }
    let t = Instant::now();
    pending.wait().await?;
    wait += t.elapsed();
    ckpt.done = true;
    ds.upsert(&ckpt).await?;
    let recipients = ckpt.recipients;
    let batches = ckpt.batches;
    // This drive's share of the fan-out (all of it unless it resumed from a checkpoint).
    let elapsed_ms = started.elapsed().as_millis() as u64;
    tracing::info!(
        campaign = %campaign.id, round = campaign.round, batches, recipients, elapsed_ms,
        read_ms = read.as_millis() as u64, encode_ms = encode.as_millis() as u64,
        publish_wait_ms = wait.as_millis() as u64,
        resumed = !ckpt.resumed_at.is_empty(), "fan-out complete"
    );
    let c = advance(
        ctx,
        &campaign.id,
        owner,
        CampaignStatus::FanningOut,
        lease,
        |c| {
            c.counts.round_batches = batches;
            Ok(c.transition(CampaignStatus::Delivering, None, ctx.clock.now())?)
        },
    )
    .await?;
    Ok(FanoutResult::Completed(Box::new(c)))
}
