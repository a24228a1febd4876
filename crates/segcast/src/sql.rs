//! Every BigQuery statement segcast runs, compiled in from the repository's `sql/` directory.
//!
//! Placeholders in braces (`{dataset}`, `{campaign}`, ...) are filled by [`Sql::render`]; only identifiers that
//! were validated (dataset from configuration, campaign IDs, round numbers, the bucket) and segment SQL that
//! was validated on save are ever spliced. Values go in as query parameters.

macro_rules! sql_file {
    ($path:literal) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../sql/", $path))
    };
}

/// A statement from `sql/`, by file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sql {
    pub file: &'static str,
    pub text: &'static str,
}

pub const DELIVERY_LOGS: Sql = Sql {
    file: "ddl/delivery_logs.sql",
    text: sql_file!("ddl/delivery_logs.sql"),
};
pub const CLICK_LOGS: Sql = Sql {
    file: "ddl/click_logs.sql",
    text: sql_file!("ddl/click_logs.sql"),
};
pub const RECIPIENT_OUTCOMES: Sql = Sql {
    file: "ddl/recipient_outcomes.sql",
    text: sql_file!("ddl/recipient_outcomes.sql"),
};
pub const SNAPSHOT_TARGETS: Sql = Sql {
    file: "pipeline/snapshot_targets.sql",
    text: sql_file!("pipeline/snapshot_targets.sql"),
};
pub const LOG_INVALID_TARGETS: Sql = Sql {
    file: "pipeline/log_invalid_targets.sql",
    text: sql_file!("pipeline/log_invalid_targets.sql"),
};
pub const COUNT_TARGETS: Sql = Sql {
    file: "pipeline/count_targets.sql",
    text: sql_file!("pipeline/count_targets.sql"),
};
pub const EXPORT_ROUND: Sql = Sql {
    file: "pipeline/export_round.sql",
    text: sql_file!("pipeline/export_round.sql"),
};
pub const ROUND_LOGGED: Sql = Sql {
    file: "pipeline/round_logged.sql",
    text: sql_file!("pipeline/round_logged.sql"),
};
pub const ROUND_SETTLED: Sql = Sql {
    file: "pipeline/round_settled.sql",
    text: sql_file!("pipeline/round_settled.sql"),
};
pub const DIFF_RETRY: Sql = Sql {
    file: "pipeline/diff_retry.sql",
    text: sql_file!("pipeline/diff_retry.sql"),
};
pub const COUNT_OWED: Sql = Sql {
    file: "pipeline/count_owed.sql",
    text: sql_file!("pipeline/count_owed.sql"),
};
pub const LOG_REMAINING: Sql = Sql {
    file: "pipeline/log_remaining.sql",
    text: sql_file!("pipeline/log_remaining.sql"),
};
pub const CAMPAIGN_OUTCOMES: Sql = Sql {
    file: "stats/campaign_outcomes.sql",
    text: sql_file!("stats/campaign_outcomes.sql"),
};

pub const CAMPAIGNS: Sql = Sql {
    file: "ddl/campaigns.sql",
    text: sql_file!("ddl/campaigns.sql"),
};
pub const CLICK_EVENTS: Sql = Sql {
    file: "ddl/click_events.sql",
    text: sql_file!("ddl/click_events.sql"),
};
pub const RECIPIENT_CLICKS: Sql = Sql {
    file: "ddl/recipient_clicks.sql",
    text: sql_file!("ddl/recipient_clicks.sql"),
};
pub const CAMPAIGN_CLICKS: Sql = Sql {
    file: "stats/campaign_clicks.sql",
    text: sql_file!("stats/campaign_clicks.sql"),
};
pub const LINK_CLICKS: Sql = Sql {
    file: "stats/link_clicks.sql",
    text: sql_file!("stats/link_clicks.sql"),
};
pub const CLICKS_OVER_TIME: Sql = Sql {
    file: "stats/clicks_over_time.sql",
    text: sql_file!("stats/clicks_over_time.sql"),
};
pub const SEGMENT_CLICKS: Sql = Sql {
    file: "stats/segment_clicks.sql",
    text: sql_file!("stats/segment_clicks.sql"),
};
pub const CONTENT_CLICKS: Sql = Sql {
    file: "stats/content_clicks.sql",
    text: sql_file!("stats/content_clicks.sql"),
};
pub const EXPORT_RECIPIENTS: Sql = Sql {
    file: "stats/export_recipients.sql",
    text: sql_file!("stats/export_recipients.sql"),
};

pub const DELIVERIES_OVER_TIME: Sql = Sql {
    file: "stats/deliveries_over_time.sql",
    text: sql_file!("stats/deliveries_over_time.sql"),
};
pub const FAILED_RECIPIENTS: Sql = Sql {
    file: "stats/failed_recipients.sql",
    text: sql_file!("stats/failed_recipients.sql"),
};
pub const SEGMENT_COUNT: Sql = Sql {
    file: "console/segment_count.sql",
    text: sql_file!("console/segment_count.sql"),
};
pub const SEGMENT_SAMPLE: Sql = Sql {
    file: "console/segment_sample.sql",
    text: sql_file!("console/segment_sample.sql"),
};

/// The DDL that sets up a dataset, in order.
pub const DDL: &[Sql] = &[
    DELIVERY_LOGS,
    CLICK_LOGS,
    RECIPIENT_OUTCOMES,
    CAMPAIGNS,
    CLICK_EVENTS,
    RECIPIENT_CLICKS,
];

/// The placeholders statements may hold. Any other `{...}` (a regex quantifier like `{32}`) is text.
const PLACEHOLDERS: &[&str] = &[
    "dataset",
    "campaign",
    "round",
    "bucket",
    "segment_sql",
    "round_table",
    "owed_table",
    "unit",
];

impl Sql {
    /// The statement with each `{name}` replaced by its value. Panics (a programming error) when a placeholder
    /// of the statement is left unfilled.
    /// Substitution is one pass over the statement's own text: a value is never scanned for placeholders, so
    /// segment SQL (a marketer's text) holding `{round}` or `{dataset}` stays as written and cannot make this
    /// panic or pull another value in.
    /// Full-line `--` comments are dropped: they document the files, and the BigQuery emulator would otherwise
    /// read `@names` inside them as parameters and refuses `EXPORT DATA` after a comment.
    pub fn render(&self, values: &[(&str, &str)]) -> String {
        let template: String = self
            .text
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n");
        let mut out = String::with_capacity(
            template.len() + values.iter().map(|(_, v)| v.len()).sum::<usize>(),
        );
        let mut rest = template.as_str();
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let name = after
                .find('}')
                .map(|close| &after[..close])
                .filter(|n| PLACEHOLDERS.contains(n) || values.iter().any(|(k, _)| k == n));
            match name {
                Some(name) => {
                    let (_, value) = values.iter().find(|(k, _)| *k == name).unwrap_or_else(|| {
                        panic!("{}: placeholder {{{name}}} left unfilled", self.file)
                    });
                    out.push_str(value);
                    rest = &after[name.len() + 1..];
                }
                None => {
                    out.push('{');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendering_fills_placeholders_and_keeps_regex_braces() {
        let s = SNAPSHOT_TARGETS.render(&[
            ("dataset", "ds"),
            ("campaign", "c_1"),
            ("segment_sql", "SELECT 1"),
        ]);
        assert!(s.contains("`ds.targets_c_1`"));
        assert!(s.contains("{32}"), "regex quantifiers are not placeholders");
        assert!(!s.contains("--"), "comments are dropped");
    }

    #[test]
    fn values_are_not_scanned_for_placeholders() {
        // Segment SQL is a marketer's text: braces in it are never placeholders (and never panic).
        let segment =
            "SELECT '{round}' AS user_id, '{dataset}{campaign}' AS x, '{segment_sql}' AS y";
        let s = SNAPSHOT_TARGETS.render(&[
            ("dataset", "ds"),
            ("segment_sql", segment),
            ("campaign", "c_1"),
        ]);
        assert!(s.contains(segment), "{s}");
        assert!(s.contains("`ds.targets_c_1`"));
    }

    #[test]
    #[should_panic(expected = "left unfilled")]
    fn a_missing_value_is_caught() {
        DELIVERY_LOGS.render(&[]);
    }
}
