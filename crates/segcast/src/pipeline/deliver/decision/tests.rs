//! Every branch of the handler's decisions, the sealing rule first among them.

use super::*;
use serde_json::json;
use time::macros::datetime;

/// A handling that is not cut short (most tests); [`super::conclude`] is called directly for the rest.
fn conclude(
    batch: &Batch,
    settled: Vec<Settled>,
    last_attempt: bool,
    at: OffsetDateTime,
) -> Conclusion {
    super::conclude(batch, settled, last_attempt, false, at)
}

const AT: OffsetDateTime = datetime!(2026-12-01 09:00 UTC);

fn batch(n: usize) -> Batch {
    crate::domain::batch::sample("c_decide", n)
}

fn campaign(status: &str, channel: &str) -> Campaign {
    serde_json::from_value(json!({
        "id": "c_decide", "name": "n", "content_id": "ct_a", "segment_id": "sg_a",
        "channel_id": channel, "send_at": "2026-12-01T09:00:00Z", "status": status,
        "updated_at": "2026-12-01T09:00:00Z",
    }))
    .unwrap()
}

/// Request `i` of a batch of `n` recipients, one recipient each (as push requests are).
fn request(b: &Batch, i: usize) -> LoggedRequest {
    LoggedRequest::sent(
        "push",
        b.retry_key(&format!("p{i}")),
        vec![b.recipients[i].user_id.to_string()],
    )
}

fn settled(b: &Batch, answers: Vec<Answer>) -> Vec<Settled> {
    answers
        .into_iter()
        .enumerate()
        .map(|(i, answer)| Settled {
            request: request(b, i),
            answer,
            stats: RequestStats {
                attempts: 2,
                rate_limited: 1,
                line_time: std::time::Duration::from_millis(10),
            },
        })
        .collect()
}

fn delivered() -> Answer {
    Answer::Delivered {
        status: 200,
        request_id: Some("r".into()),
        detail: None,
    }
}

fn outcomes(rows: &[DeliveryLogRow]) -> Vec<(Outcome, Option<FailureReason>, i64)> {
    rows.iter()
        .map(|r| (r.outcome, r.reason, r.recipient_count))
        .collect()
}

#[test]
fn arrival_follows_the_dedupe_record_then_the_campaign() {
    let b = batch(2);
    let ch = b.channel_id.as_str().to_owned();
    let running = campaign("delivering", &ch);
    assert_eq!(on_arrival(&b, true, Some(&running)), Arrival::AlreadyDone);
    assert_eq!(
        on_arrival(&b, true, None),
        Arrival::AlreadyDone,
        "done wins even when the campaign is gone"
    );
    assert!(
        matches!(on_arrival(&b, false, None), Arrival::Refuse(w) if w.contains("does not exist"))
    );
    let elsewhere = campaign("delivering", "1999999999");
    assert!(
        matches!(on_arrival(&b, false, Some(&elsewhere)), Arrival::Refuse(w) if w.contains("channel"))
    );
    assert_eq!(
        on_arrival(&b, false, Some(&campaign("paused", &ch))),
        Arrival::Park
    );
    for ended in ["canceled", "failed", "completed"] {
        assert_eq!(
            on_arrival(&b, false, Some(&campaign(ended, &ch))),
            Arrival::SettleEnded,
            "{ended}"
        );
    }
    for sending in ["fanning_out", "delivering", "retrying"] {
        assert_eq!(
            on_arrival(&b, false, Some(&campaign(sending, &ch))),
            Arrival::Send,
            "{sending}"
        );
    }
    let dry = Batch {
        dry_run: true,
        ..b.clone()
    };
    assert_eq!(on_arrival(&dry, false, Some(&running)), Arrival::Validate);
    assert_eq!(
        on_arrival(&dry, false, Some(&campaign("paused", &ch))),
        Arrival::Park,
        "a paused dry run parks"
    );
}

#[test]
fn an_ended_campaign_settles_every_recipient_canceled_without_a_request() {
    let b = batch(3);
    let row = ended_row(&b, AT);
    assert_eq!(
        (row.outcome, row.reason, row.recipient_count),
        (Outcome::Failed, Some(FailureReason::Canceled), 3)
    );
    assert_eq!(row.endpoint, "none");
    assert_eq!(row.retry_key, None);
    assert_eq!(row.log_id, format!("{}:settled:failed:canceled", b.id));
    assert_eq!(row.logged_at, "2026-12-01T09:00:00Z");
}

#[test]
fn a_dry_run_logs_validated_or_rejected_and_retries_anything_else() {
    let b = batch(2);
    let ok = after_validate(&b, SendOutcome::Accepted { request_id: None }, AT).unwrap();
    assert_eq!(
        (ok.outcome, ok.http_status, ok.endpoint.as_str()),
        (Outcome::Validated, Some(200), "validate")
    );
    let bad = after_validate(
        &b,
        SendOutcome::Rejected {
            status: 400,
            message: "bad".into(),
        },
        AT,
    )
    .unwrap();
    assert_eq!(
        (bad.outcome, bad.reason, bad.detail.as_deref()),
        (
            Outcome::Failed,
            Some(FailureReason::LineRejected),
            Some("bad")
        )
    );
    assert!(after_validate(&b, SendOutcome::RateLimited, AT).is_err());
    assert!(
        after_validate(
            &b,
            SendOutcome::Unknown {
                detail: "timeout".into()
            },
            AT
        )
        .is_err()
    );
}

#[test]
fn definite_answers_settle_at_once_whatever_the_time_left() {
    for (out_of_time, maybe) in [(false, false), (true, false), (false, true), (true, true)] {
        assert_eq!(
            after_attempt(
                SendOutcome::Accepted {
                    request_id: Some("r".into())
                },
                out_of_time,
                maybe
            ),
            Next::Settled(delivered())
        );
        assert_eq!(
            after_attempt(
                SendOutcome::AlreadyAccepted {
                    request_id: "r".into()
                },
                out_of_time,
                maybe
            ),
            Next::Settled(Answer::Delivered {
                status: 409,
                request_id: Some("r".into()),
                detail: Some("retry key already accepted".into())
            })
        );
        assert_eq!(
            after_attempt(
                SendOutcome::Rejected {
                    status: 400,
                    message: "m".into()
                },
                out_of_time,
                maybe
            ),
            Next::Settled(Answer::Rejected {
                status: 400,
                message: "m".into()
            })
        );
        assert_eq!(
            after_attempt(
                SendOutcome::QuotaExhausted {
                    message: "q".into()
                },
                out_of_time,
                maybe
            ),
            Next::Settled(Answer::Quota)
        );
    }
}

#[test]
fn unknown_answers_are_retried_in_time_and_stay_unknown_past_it() {
    let unknown = || SendOutcome::Unknown {
        detail: "502".into(),
    };
    assert_eq!(
        after_attempt(unknown(), false, false),
        Next::Again {
            maybe_accepted: true
        }
    );
    assert_eq!(
        after_attempt(unknown(), false, true),
        Next::Again {
            maybe_accepted: true
        }
    );
    assert_eq!(
        after_attempt(unknown(), true, false),
        Next::Settled(Answer::Unknown("502".into()))
    );
}

#[test]
fn a_429_is_retryable_only_if_no_attempt_can_have_been_accepted() {
    assert_eq!(
        after_attempt(SendOutcome::RateLimited, false, false),
        Next::Again {
            maybe_accepted: false
        }
    );
    assert_eq!(
        after_attempt(SendOutcome::RateLimited, false, true),
        Next::Again {
            maybe_accepted: true
        }
    );
    assert_eq!(
        after_attempt(SendOutcome::RateLimited, true, false),
        Next::Settled(Answer::RateLimited)
    );
    assert!(matches!(
        after_attempt(SendOutcome::RateLimited, true, true),
        Next::Settled(Answer::Unknown(w)) if w.contains("429")
    ));
}

#[test]
fn every_request_definite_settles_the_batch_without_a_seal() {
    let b = batch(2);
    let c = conclude(
        &b,
        settled(
            &b,
            vec![
                delivered(),
                Answer::Rejected {
                    status: 400,
                    message: "m".into(),
                },
            ],
        ),
        false,
        AT,
    );
    let Conclusion::Settle { rows, seal } = c else {
        panic!("{c:?}")
    };
    assert!(!seal);
    assert_eq!(
        outcomes(&rows),
        vec![
            (Outcome::Delivered, None, 1),
            (Outcome::Failed, Some(FailureReason::LineRejected), 1)
        ]
    );
    assert_eq!(
        rows[0].retry_key.as_deref(),
        Some(b.retry_key("p0").to_string().as_str())
    );
}

#[test]
fn retryable_rows_need_the_seal() {
    let b = batch(2);
    let c = conclude(
        &b,
        settled(&b, vec![delivered(), Answer::RateLimited]),
        false,
        AT,
    );
    let Conclusion::Settle { rows, seal } = c else {
        panic!("{c:?}")
    };
    assert!(seal);
    assert_eq!(
        outcomes(&rows)[1],
        (Outcome::Retryable, Some(FailureReason::RateLimited), 1)
    );
    assert_eq!(rows[1].http_status, Some(429));
}

#[test]
fn a_lost_seal_turns_retryable_into_a_redelivery_or_on_the_last_attempt_into_unknown() {
    let b = batch(3);
    let Conclusion::Settle { rows, .. } = conclude(
        &b,
        settled(
            &b,
            vec![delivered(), Answer::RateLimited, Answer::RateLimited],
        ),
        false,
        AT,
    ) else {
        panic!()
    };
    let Conclusion::Retry { log, why } = unsealed(&b, rows.clone(), false, AT) else {
        panic!()
    };
    assert_eq!(
        outcomes(&log),
        vec![(Outcome::Delivered, None, 1)],
        "only the truths are logged"
    );
    assert!(why.starts_with("2 request(s) rate-limited"), "{why}");
    let Conclusion::Settle { rows, seal } = unsealed(&b, rows, true, AT) else {
        panic!()
    };
    assert!(!seal);
    assert_eq!(
        outcomes(&rows),
        vec![
            (Outcome::Delivered, None, 1),
            (Outcome::Failed, Some(FailureReason::OutcomeUnknown), 2)
        ]
    );
    assert!(rows.iter().all(|r| r.outcome != Outcome::Retryable));
}

#[test]
fn a_lost_seal_on_the_last_attempt_replaces_an_earlier_unknown_row() {
    let b = batch(3);
    let Conclusion::Settle { rows, seal } = conclude(
        &b,
        settled(
            &b,
            vec![
                delivered(),
                Answer::RateLimited,
                Answer::Unknown("timeout".into()),
            ],
        ),
        true,
        AT,
    ) else {
        panic!()
    };
    assert!(seal);
    let Conclusion::Settle { rows, .. } = unsealed(&b, rows, true, AT) else {
        panic!()
    };
    let unknown: Vec<_> = rows
        .iter()
        .filter(|r| r.reason == Some(FailureReason::OutcomeUnknown))
        .collect();
    assert_eq!(
        unknown.len(),
        1,
        "one row settles both the refused and the unknown request"
    );
    assert_eq!(unknown[0].recipient_count, 2);
}

#[test]
fn unknown_outcomes_bring_the_batch_back_and_on_the_last_attempt_are_settled_unknown() {
    let b = batch(3);
    let answers = || {
        settled(
            &b,
            vec![
                delivered(),
                Answer::Unknown("502".into()),
                Answer::Unknown("timeout".into()),
            ],
        )
    };
    let Conclusion::Retry { log, why } = conclude(&b, answers(), false, AT) else {
        panic!()
    };
    assert_eq!(outcomes(&log), vec![(Outcome::Delivered, None, 1)]);
    assert_eq!(why, "2 request(s) with unknown outcome: 502");
    let Conclusion::Settle { rows, seal } = conclude(&b, answers(), true, AT) else {
        panic!()
    };
    assert!(!seal);
    assert_eq!(
        outcomes(&rows),
        vec![
            (Outcome::Delivered, None, 1),
            (Outcome::Failed, Some(FailureReason::OutcomeUnknown), 2)
        ]
    );
    assert_eq!(rows[1].detail.as_deref(), Some("502"));
    assert_eq!(
        rows[1].log_id,
        format!("{}:dead-lettered:failed:outcome_unknown", b.id)
    );
}

#[test]
fn quota_stops_the_handling_and_logs_only_the_truths() {
    let b = batch(4);
    let c = conclude(
        &b,
        settled(
            &b,
            vec![
                delivered(),
                Answer::Quota,
                Answer::RateLimited,
                Answer::Unknown("x".into()),
            ],
        ),
        true,
        AT,
    );
    let Conclusion::Quota { log } = c else {
        panic!("{c:?}")
    };
    assert_eq!(outcomes(&log), vec![(Outcome::Delivered, None, 1)]);
}

#[test]
fn log_ids_are_stable_across_handlings() {
    let b = batch(1);
    let a = conclude(&b, settled(&b, vec![delivered()]), false, AT);
    let later = conclude(
        &b,
        settled(&b, vec![delivered()]),
        false,
        AT + time::Duration::hours(1),
    );
    let (Conclusion::Settle { rows: a, .. }, Conclusion::Settle { rows: later, .. }) = (a, later)
    else {
        panic!()
    };
    assert_eq!(a[0].log_id, later[0].log_id);
    assert_eq!(a[0].log_id, format!("{}:delivered", b.retry_key("p0")));
}

#[test]
fn outcomes_are_summed_by_outcome_and_reason_for_the_metrics() {
    let b = batch(4);
    let s = settled(
        &b,
        vec![
            delivered(),
            Answer::RateLimited,
            delivered(),
            Answer::Unknown("x".into()),
        ],
    );
    let sums = summarize(&s);
    let keys: Vec<_> = sums
        .iter()
        .map(|o| (o.outcome, o.reason, o.requests, o.recipients))
        .collect();
    assert_eq!(
        keys,
        vec![
            ("delivered", "", 2, 2),
            ("retryable", "rate_limited", 1, 1),
            ("unknown", "", 1, 1)
        ]
    );
    assert_eq!(sums[0].rate_limited, 2);
    assert_eq!(sums[0].line_time, std::time::Duration::from_millis(20));
}

#[test]
fn a_handling_cut_short_hands_the_batch_back_and_never_logs_retryable_even_on_its_last_attempt() {
    let b = batch(4);
    for last_attempt in [false, true] {
        let c = super::conclude(
            &b,
            settled(
                &b,
                vec![
                    delivered(),
                    Answer::RateLimited,
                    Answer::Unknown(super::super::requests::CUT_SHORT.into()),
                    Answer::Quota,
                ],
            ),
            last_attempt,
            true,
            AT,
        );
        let Conclusion::Retry { log, why } = c else {
            panic!("{c:?}")
        };
        assert_eq!(
            outcomes(&log),
            vec![(Outcome::Delivered, None, 1)],
            "only what is true for good"
        );
        assert!(why.contains("shutting down"), "{why}");
    }
}
