//! What every stage needs: the settings, the Google clients and the clock.

use crate::config::Settings;
use crate::gcp::Gcp;
use segcast_clock::Clock;
use std::sync::Arc;

#[derive(Clone)]
pub struct Ctx {
    pub settings: Arc<Settings>,
    pub gcp: Gcp,
    /// Wall-clock time for every rule that compares times (leases, send times, pauses, LINE's 24 hours).
    pub clock: Clock,
    /// Cancelled when the process is told to stop (SIGTERM: Cloud Run gives 10 s): the faces refuse new work
    /// with 503, handlings in progress stop starting LINE requests and hand their batch back, ticks yield.
    pub stopping: tokio_util::sync::CancellationToken,
}

impl Ctx {
    /// Connects to Google's services (or their emulators) with the system clock.
    pub async fn connect(settings: Settings) -> anyhow::Result<Self> {
        Self::connect_with_clock(settings, Clock::system()).await
    }

    /// Connects with `clock` (tests move it by hand or run it faster).
    pub async fn connect_with_clock(settings: Settings, clock: Clock) -> anyhow::Result<Self> {
        let gcp = Gcp::connect(&settings).await?;
        Ok(Self {
            settings: Arc::new(settings),
            gcp,
            clock,
            stopping: Default::default(),
        })
    }

    /// `dataset` placeholder value for [`crate::sql`].
    pub fn dataset(&self) -> &str {
        &self.settings.dataset
    }
}
