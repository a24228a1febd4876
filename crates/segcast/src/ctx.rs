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
        })
    }

    /// `dataset` placeholder value for [`crate::sql`].
    pub fn dataset(&self) -> &str {
        &self.settings.dataset
    }
}
