//! Creates what the pipeline needs on the local stack: the dataset, tables and views (from `sql/`), the N
//! delivery topics with push subscriptions to the delivery handler (retry policy, dead-letter topic), the
//! dead-letter subscription, and the delivery-log and click-log topics with the log sink's pull subscriptions.
//! In production terraform creates the same things with the same names.

use crate::ctx::Ctx;
use crate::gcp::pubsub::{PushAuth, PushSubscription};
use crate::sql;
use std::time::Duration;

/// Dead-lettering after this many attempts: with the retry policy's backoff (1 s .. 60 s) that is well over
/// ten minutes of retries, long enough to ride out a handler restart, short of LINE's 24 h retry-key window.
pub const MAX_DELIVERY_ATTEMPTS: i32 = 15;

pub async fn bigquery(ctx: &Ctx) -> anyhow::Result<()> {
    let bq = &ctx.gcp.bigquery;
    bq.execute(
        &format!("CREATE SCHEMA IF NOT EXISTS `{}`", ctx.dataset()),
        &[],
    )
    .await?;
    for ddl in sql::DDL {
        bq.execute(&ddl.render(&[("dataset", ctx.dataset())]), &[])
            .await?;
    }
    Ok(())
}

/// `handler_url` is the delivery handler's base URL (e.g. `http://127.0.0.1:8081`).
pub async fn pubsub(ctx: &Ctx, handler_url: &str) -> anyhow::Result<()> {
    let s = &ctx.settings;
    let ps = &ctx.gcp.pubsub;
    let auth = match (
        &s.delivery.push_service_account,
        &s.delivery.push_audience,
        &s.delivery.push_token,
    ) {
        (Some(sa), Some(aud), _) => PushAuth::Oidc {
            service_account: sa.clone(),
            audience: aud.clone(),
        },
        (_, _, Some(token)) => PushAuth::SharedToken(token.expose().to_owned()),
        _ => anyhow::bail!(
            "set SEGCAST_PUSH_TOKEN (local) or SEGCAST_PUSH_SERVICE_ACCOUNT and SEGCAST_PUSH_AUDIENCE"
        ),
    };
    let dlt = s.dead_letter_topic();
    ps.ensure_topic(&dlt).await?;
    ps.ensure_topic(&s.log_topic).await?;
    ps.ensure_pull_subscription(&s.log_subscription(), &s.log_topic, Duration::from_secs(60))
        .await?;
    ps.ensure_topic(&s.click.topic).await?;
    ps.ensure_pull_subscription(
        &s.click_subscription(),
        &s.click.topic,
        Duration::from_secs(60),
    )
    .await?;
    ps.ensure_push_subscription(&PushSubscription {
        name: format!("{dlt}-push"),
        topic: dlt.clone(),
        endpoint: format!("{handler_url}/push/dead-letter"),
        auth: auth.clone(),
        ack_deadline: s.delivery.ack_deadline,
        dead_letter_topic: None,
        max_delivery_attempts: 0,
        min_backoff: Duration::from_secs(5),
        max_backoff: Duration::from_secs(600),
    })
    .await?;
    for i in 0..s.delivery_topics {
        let topic = s.delivery_topic(i);
        ps.ensure_topic(&topic).await?;
        ps.ensure_push_subscription(&PushSubscription {
            name: s.delivery_subscription(i),
            topic,
            endpoint: format!("{handler_url}/push/delivery"),
            auth: auth.clone(),
            ack_deadline: s.delivery.ack_deadline,
            dead_letter_topic: Some(dlt.clone()),
            max_delivery_attempts: MAX_DELIVERY_ATTEMPTS,
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        })
        .await?;
    }
    Ok(())
}
