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
/// [`redrive`] build identical batches. Reads the file chunk by chunk (memory bounded by a batch); the cutting
/// itself is [`Cutter`]'s, apart from any I/O.
struct FileBatches {
    reader: crate::gcp::storage::ObjectReader,
    cutter: Cutter,
}

/// A batch's recipients, the line it starts at, and the position after it (where a checkpoint would resume).
#[derive(Debug, Clone, PartialEq)]
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
            reader: ctx.gcp.storage.read_from(object, byte_offset).await?,
            cutter: Cutter::new(object, byte_offset, line, mode, batch_size),
        })
    }

    /// The next batch, or `None` at the end of the file.
    async fn next(&mut self) -> anyhow::Result<Option<Cut>> {
        loop {
            match self.cutter.next()? {
                Cutting::Cut(cut) => return Ok(Some(cut)),
                Cutting::End => return Ok(None),
                Cutting::NeedMore => match self.reader.next_chunk().await {
                    Some(chunk) => self.cutter.push(&chunk?),
                    None => self.cutter.finish(),
                },
            }
        }
    }
}

/// Cuts a round file's lines into batches of `batch_size` recipients, skipping blank lines; a batch starts at
/// its first recipient's line. Fed chunks as they arrive; pure, so the batching is unit-tested.
struct Cutter {
    object: String,
    lines: LineSplitter,
    line_no: u64,
    mode: DeliveryMode,
    batch_size: usize,
    /// The batch being filled, and the line it starts at.
    pending: Vec<Recipient>,
    start_line: u64,
}

/// What [`Cutter::next`] has.
#[derive(Debug, PartialEq)]
enum Cutting {
    Cut(Cut),
    /// Push the next chunk (or finish at the end of the file).
    NeedMore,
    End,
}

impl Cutter {
    /// A cutter for `object` read from `byte_offset`, which is line `line` of the file.
    fn new(
        object: &str,
        byte_offset: u64,
        line: u64,
        mode: DeliveryMode,
        batch_size: usize,
    ) -> Self {
        Self {
            object: object.to_owned(),
            lines: LineSplitter::new(byte_offset),
            line_no: line,
            mode,
            batch_size,
            pending: Vec::new(),
            start_line: line,
        }
    }

    fn push(&mut self, chunk: &[u8]) {
        self.lines.push(chunk);
    }

    fn finish(&mut self) {
        self.lines.finish();
    }

    fn next(&mut self) -> anyhow::Result<Cutting> {
        while self.pending.len() < self.batch_size {
            let next = self
                .lines
                .next_line()
                .map_err(|e| anyhow!("{} line {}: {e}", self.object, self.line_no))?;
            match next {
                Next::NeedMore => return Ok(Cutting::NeedMore),
                Next::End => break,
                Next::Line(l) => {
                    if !is_blank(l) {
                        if self.pending.is_empty() {
                            self.start_line = self.line_no;
                            self.pending.reserve_exact(self.batch_size);
                        }
                        let r = parse_recipient(l, self.mode)
                            .map_err(|e| anyhow!("{} line {}: {e}", self.object, self.line_no))?;
                        self.pending.push(r);
                    }
                    self.line_no += 1;
                }
            }
        }
        if self.pending.is_empty() {
            return Ok(Cutting::End);
        }
        Ok(Cutting::Cut(Cut {
            start_line: self.start_line,
            recipients: std::mem::take(&mut self.pending),
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

/// Publishes the campaign's current round from its checkpoint until every batch is out (the campaign becomes
/// `delivering`) or `deadline` passes (the checkpoint holds the position for the next drive).
pub async fn run(
    ctx: &Ctx,
    campaign: &Campaign,
    owner: &str,
    lease: Duration,
    deadline: Instant,
) -> Result<FanoutResult, AdvanceError> {
    let mut drive = Drive::start(ctx, campaign, owner, lease).await?;
    if !drive.publish_files(deadline).await? {
        tracing::info!(
            campaign = %campaign.id, batches = drive.ckpt.batches,
            "{}", crate::telemetry::events::FANOUT_YIELDS
        );
        return Ok(FanoutResult::Yielded);
    }
    drive.complete().await
}

/// One drive of a round's fan-out: where it is (the checkpoint), what it publishes with, and where its time goes.
struct Drive<'c> {
    ctx: &'c Ctx,
    campaign: &'c Campaign,
    owner: &'c str,
    lease: Duration,
    ckpt: FanoutCheckpoint,
    mode: DeliveryMode,
    batch_size: usize,
    messages: Messages,
    topics: BatchTopics,
    pending: Pending,
    lease_renewal: LeaseRenewal,
    /// Time between batches (`SEGCAST_FANOUT_RATE`), if paced.
    pace: Option<Duration>,
    started: Instant,
    published_here: u32,
    /// Reading and cutting the files, encoding batches, waiting for Pub/Sub to confirm publishes (checkpoints
    /// wait for the publishes before them): logged when the fan-out completes.
    read: Duration,
    encode: Duration,
    wait: Duration,
}

impl<'c> Drive<'c> {
    async fn start(
        ctx: &'c Ctx,
        campaign: &'c Campaign,
        owner: &'c str,
        lease: Duration,
    ) -> anyhow::Result<Self> {
        let key = FanoutCheckpoint::key_for(&campaign.id, campaign.round);
        let mut ckpt: FanoutCheckpoint =
            ctx.gcp
                .datastore
                .get(&key)
                .await?
                .unwrap_or(FanoutCheckpoint {
                    key: key.clone(),
                    ..Default::default()
                });
        if ckpt.batches > 0 && !ckpt.done {
            tracing::info!(campaign = %campaign.id, batches = ckpt.batches, "fan-out resumes from its checkpoint");
            ckpt.resumed_at.push(ckpt.batches);
        }
        let (mode, batch_size, messages) = batching(ctx, campaign).await?;
        Ok(Self {
            // The rotation over the topics continues from the checkpoint: batch n goes to topic n mod N.
            topics: BatchTopics::open(ctx, ckpt.batches).await?,
            ctx,
            campaign,
            owner,
            lease,
            ckpt,
            mode,
            batch_size,
            messages,
            pending: Pending {
                futures: Vec::new(),
                saving: None,
            },
            lease_renewal: LeaseRenewal {
                last: Instant::now(),
            },
            pace: match ctx.settings.delivery.fanout_rate {
                0 => None,
                r => Some(Duration::from_secs_f64(1.0 / f64::from(r))),
            },
            started: Instant::now(),
            published_here: 0,
            read: Duration::ZERO,
            encode: Duration::ZERO,
            wait: Duration::ZERO,
        })
    }

    /// Publishes the round's files from the checkpoint on. `false`: it yielded at `deadline` (or the process is
    /// stopping) with every publish so far confirmed and checkpointed.
    async fn publish_files(&mut self, deadline: Instant) -> Result<bool, AdvanceError> {
        let mut files = ReadAhead::new(
            self.ctx,
            self.campaign,
            &self.ckpt,
            self.mode,
            self.batch_size,
        );
        while !self.ckpt.done && self.ckpt.file < self.campaign.round_files.len() {
            let file = self.ckpt.file;
            loop {
                let t = Instant::now();
                let next = files.next().await?;
                self.read += t.elapsed();
                let Some(cut) = next else { break };
                let (next_byte, next_line) = (cut.next_byte, cut.next_line);
                self.publish(cut, file).await?;
                // A checkpoint sits on a batch boundary: the next batch starts at the next line.
                if self.ckpt.batches.is_multiple_of(CHECKPOINT_EVERY) {
                    (self.ckpt.byte_offset, self.ckpt.line) = (next_byte, next_line);
                    self.checkpoint().await?;
                    if Instant::now() >= deadline || self.ctx.stopping.is_cancelled() {
                        self.pending.wait().await?;
                        return Ok(false);
                    }
                }
            }
            // The file is done: the next drive starts at the next one.
            (self.ckpt.file, self.ckpt.byte_offset, self.ckpt.line) = (file + 1, 0, 0);
            self.checkpoint().await?;
        }
        Ok(true)
    }

    /// Publishes one batch (paced when `SEGCAST_FANOUT_RATE` is set).
    async fn publish(&mut self, cut: Cut, file: usize) -> anyhow::Result<()> {
        let t = Instant::now();
        let batch = cut.into_batch(self.campaign, file, self.mode, &self.messages);
        let publish = self.topics.publish(&batch)?;
        self.encode += t.elapsed();
        self.pending.futures.push(publish);
        self.ckpt.batches += 1;
        self.ckpt.recipients += batch.recipients.len() as u64;
        self.published_here += 1;
        if let Some(p) = self.pace {
            tokio::time::sleep_until(self.started + p * self.published_here).await;
        }
        Ok(())
    }

    /// Saves the checkpoint behind the publishes so far, and renews the lease when due.
    async fn checkpoint(&mut self) -> Result<(), AdvanceError> {
        let t = Instant::now();
        self.pending.checkpoint(self.ctx, &self.ckpt).await?;
        self.wait += t.elapsed();
        self.lease_renewal
            .renew_if_due(self.ctx, self.campaign, self.owner, self.lease)
            .await
    }

    /// Every batch is out: the checkpoint says so and the campaign is `delivering`.
    async fn complete(mut self) -> Result<FanoutResult, AdvanceError> {
        let t = Instant::now();
        self.pending.wait().await?;
        self.wait += t.elapsed();
        self.ckpt.done = true;
        self.ctx.gcp.datastore.upsert(&self.ckpt).await?;
        let (ctx, campaign, ckpt) = (self.ctx, self.campaign, &self.ckpt);
        let batches = ckpt.batches;
        // This drive's share of the fan-out (all of it unless it resumed from a checkpoint).
        tracing::info!(
            campaign = %campaign.id, round = campaign.round, batches, recipients = ckpt.recipients,
            elapsed_ms = self.started.elapsed().as_millis() as u64,
            read_ms = self.read.as_millis() as u64, encode_ms = self.encode.as_millis() as u64,
            publish_wait_ms = self.wait.as_millis() as u64,
            resumed = !ckpt.resumed_at.is_empty(), "fan-out complete"
        );
        let c = advance(
            ctx,
            &campaign.id,
            self.owner,
            CampaignStatus::FanningOut,
            self.lease,
            |c| {
                c.counts.round_batches = batches;
                Ok(c.transition(CampaignStatus::Delivering, None, ctx.clock.now())?)
            },
        )
        .await?;
        Ok(FanoutResult::Completed(Box::new(c)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A round file: `n` recipients, with blank lines sprinkled in (BigQuery's export has none, but the reader
    /// must not count them as recipients or shift batch boundaries).
    fn file(n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..n {
            if i % 7 == 3 {
                out.extend_from_slice(b"\n   \n");
            }
            out.extend_from_slice(
                format!("{{\"user_id\":\"U{i:032x}\",\"name\":\"n{i}\"}}\n").as_bytes(),
            );
        }
        out
    }

    /// Every batch of `data` cut from (`byte`, `line`), fed in chunks of `chunk` bytes.
    fn cut_all(
        data: &[u8],
        byte: u64,
        line: u64,
        batch: usize,
        chunk: usize,
    ) -> anyhow::Result<Vec<Cut>> {
        let mut cutter = Cutter::new("round/f0.json", byte, line, DeliveryMode::Push, batch);
        let mut chunks = data[byte as usize..].chunks(chunk);
        let mut out = Vec::new();
        loop {
            match cutter.next()? {
                Cutting::Cut(c) => out.push(c),
                Cutting::End => return Ok(out),
                Cutting::NeedMore => match chunks.next() {
                    Some(c) => cutter.push(c),
                    None => cutter.finish(),
                },
            }
        }
    }

    #[test]
    fn batches_hold_batch_size_recipients_whatever_the_chunking_and_skip_blank_lines() {
        let data = file(23);
        let whole = cut_all(&data, 0, 0, 5, data.len()).unwrap();
        let sizes: Vec<usize> = whole.iter().map(|c| c.recipients.len()).collect();
        assert_eq!(sizes, vec![5, 5, 5, 5, 3]);
        assert_eq!(whole[0].start_line, 0);
        let ids: Vec<String> = whole
            .iter()
            .flat_map(|c| c.recipients.iter().map(|r| r.user_id.to_string()))
            .collect();
        assert_eq!(
            ids,
            (0..23).map(|i| format!("U{i:032x}")).collect::<Vec<_>>(),
            "each recipient once, in order"
        );
        assert!(
            whole
                .iter()
                .all(|c| c.recipients.iter().all(|r| r.attrs.is_some())),
            "push keeps the columns"
        );
        for chunk in [1, 2, 3, 17, 64, 1000] {
            assert_eq!(
                cut_all(&data, 0, 0, 5, chunk).unwrap(),
                whole,
                "chunks of {chunk} bytes"
            );
        }
        assert_eq!(whole.last().unwrap().next_byte, data.len() as u64);
    }

    #[test]
    fn a_checkpoint_at_any_batch_boundary_resumes_with_the_same_batches() {
        let data = file(23);
        let whole = cut_all(&data, 0, 0, 4, 9).unwrap();
        for (i, c) in whole.iter().enumerate() {
            let rest = cut_all(&data, c.next_byte, c.next_line, 4, 9).unwrap();
            assert_eq!(rest, whole[i + 1..].to_vec(), "resumed after batch {i}");
        }
        // A batch starts at the line of its first recipient (its id names that line), after any blank lines.
        let starts: Vec<u64> = whole.iter().map(|c| c.start_line).collect();
        let mut expected = Vec::new();
        let mut recipients = 0;
        for (line, l) in data.split(|b| *b == b'\n').enumerate() {
            if !l.iter().all(u8::is_ascii_whitespace) {
                if recipients % 4 == 0 {
                    expected.push(line as u64);
                }
                recipients += 1;
            }
        }
        assert_eq!(starts, expected);
    }

    #[test]
    fn a_bad_line_is_an_error_naming_the_file_and_line() {
        let mut data = file(3);
        data.extend_from_slice(b"{\"user_id\":\"not-a-line-user\"}\n");
        let e = cut_all(&data, 0, 0, 10, 8).unwrap_err().to_string();
        assert!(e.starts_with("round/f0.json line 3:"), "{e}");
        let e = cut_all(b"{\"user_id\":\n", 0, 0, 10, 8)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 0") && e.contains("not a JSON object"),
            "{e}"
        );
    }

    #[test]
    fn an_empty_file_has_no_batches() {
        assert_eq!(cut_all(b"", 0, 0, 10, 8).unwrap(), vec![]);
        assert_eq!(cut_all(b"\n\n  \n", 0, 0, 10, 8).unwrap(), vec![]);
    }
}
