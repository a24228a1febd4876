//! The pre-parse of segment SQL: what can be checked without BigQuery, before anything runs.
//!
//! A segment is spliced into segcast's own statements as `FROM (<segment>) AS segment`, so it must be exactly
//! one query: a `SELECT` (or `WITH ... SELECT`, or a parenthesised query) with balanced parentheses, no second
//! statement, and nothing that writes or scripts. Substring checks cannot tell a `;` in a string literal from one
//! that ends a statement, nor see a statement hidden after a comment, so the SQL is first split into tokens the
//! way BigQuery's lexer does (GoogleSQL): string and bytes literals (`'..'`, `".."`, `'''..'''`, `""".."""`,
//! with `r`/`b` prefixes), quoted identifiers (`` `..` ``), comments (`--`, `#`, `/* */`), words, numbers and
//! symbols. The checks then look at the significant tokens only.
//!
//! This is a pre-check (clear messages for marketers, and a refusal before any job is started); the console
//! also dry-runs the segment in BigQuery, and the runtime service account can only read.

use crate::domain::ParseError;

/// BigQuery's limit on the length of a query's text.
pub const MAX_SQL_BYTES: usize = 1024 * 1024;

/// The field segment SQL problems are reported on.
const FIELD: &str = "sql";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// An unquoted identifier or keyword.
    Word,
    /// `` `a quoted identifier` ``.
    QuotedIdent,
    /// A string or bytes literal, any quoting.
    Str,
    Number,
    /// `--`, `#` or `/* */`.
    Comment,
    /// Any other character: operators, `(`, `)`, `;`, `,`, `.`, `@`, ...
    Symbol,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token<'a> {
    pub kind: TokenKind,
    pub text: &'a str,
    /// Byte offset in the SQL.
    pub start: usize,
}

impl Token<'_> {
    pub fn end(&self) -> usize {
        self.start + self.text.len()
    }

    fn is_symbol(&self, c: &str) -> bool {
        self.kind == TokenKind::Symbol && self.text == c
    }

    fn is_word(&self, w: &str) -> bool {
        self.kind == TokenKind::Word && self.text.eq_ignore_ascii_case(w)
    }
}

/// Why the SQL cannot be split into tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexError {
    pub at: usize,
    pub message: String,
}

/// Splits `sql` into tokens (whitespace dropped, comments kept). Linear in the length of `sql`.
pub fn tokenize(sql: &str) -> Result<Vec<Token<'_>>, LexError> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |at: usize, message: &str| LexError {
        at,
        message: message.to_owned(),
    };
    while i < b.len() {
        let c = b[i];
        let start = i;
        let kind = if c.is_ascii_whitespace() {
            i += 1;
            continue;
        } else if c == b'#' || (c == b'-' && b.get(i + 1) == Some(&b'-')) {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            TokenKind::Comment
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let Some(end) = find(b, i + 2, b"*/") else {
                return Err(err(start, "a /* comment is never closed with */"));
            };
            i = end + 2;
            TokenKind::Comment
        } else if c == b'`' {
            i = end_of_quoted(b, i, b'`', false)
                .ok_or_else(|| err(start, "a `quoted identifier` is never closed"))?;
            TokenKind::QuotedIdent
        } else if let Some(quote_at) = string_start(b, i) {
            i = end_of_quoted(b, quote_at, b[quote_at], true)
                .ok_or_else(|| err(start, "a string literal is never closed"))?;
            TokenKind::Str
        } else if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 {
            // Words; non-ASCII characters are only valid inside quotes, BigQuery refuses them elsewhere, so
            // taking them into a word is safe (it can only make a word, never hide a symbol).
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] >= 0x80) {
                i += 1;
            }
            TokenKind::Word
        } else if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.' || b[i] == b'_') {
                // Exponent signs: 1e-5.
                if (b[i] == b'e' || b[i] == b'E')
                    && matches!(b.get(i + 1), Some(b'+' | b'-'))
                    && b.get(i + 2).is_some_and(u8::is_ascii_digit)
                {
                    i += 1;
                }
                i += 1;
            }
            TokenKind::Number
        } else {
            i += 1;
            TokenKind::Symbol
        };
        out.push(Token {
            kind,
            text: &sql[start..i],
            start,
        });
    }
    Ok(out)
}

fn find(b: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    b.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// A string or bytes literal starting at `i` (`'..'`, `r'..'`, `b".."`, `rb'..'`, ...): the index of its
/// first quote.
fn string_start(b: &[u8], i: usize) -> Option<usize> {
    let is_quote = |j: usize| matches!(b.get(j), Some(b'\'' | b'"'));
    if is_quote(i) {
        return Some(i);
    }
    let lower = |j: usize| b.get(j).map(u8::to_ascii_lowercase);
    // A prefix only counts at the start of a word (`xr'..'` is a word followed by a string).
    if i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_' || b[i - 1] >= 0x80) {
        return None;
    }
    match (lower(i), lower(i + 1)) {
        (Some(b'r'), Some(b'b')) | (Some(b'b'), Some(b'r')) if is_quote(i + 2) => Some(i + 2),
        (Some(b'r' | b'b'), _) if is_quote(i + 1) => Some(i + 1),
        _ => None,
    }
}

/// The index just past the literal whose opening `quote` is at `i`, or `None` when it is never closed.
/// `strings`: `'` and `"` may be tripled (`'''..'''`), and the others cannot hold a line break (BigQuery
/// refuses them: they count as never closed). A backslash keeps the next character from closing the literal,
/// in raw strings too (as in BigQuery, where a raw string cannot end with an odd number of backslashes).
fn end_of_quoted(b: &[u8], i: usize, quote: u8, strings: bool) -> Option<usize> {
    let triple = strings && b.get(i + 1) == Some(&quote) && b.get(i + 2) == Some(&quote);
    let mut j = if triple { i + 3 } else { i + 1 };
    while j < b.len() {
        let c = b[j];
        if c == b'\n' && !triple && strings {
            return None;
        }
        if c == b'\\' {
            if b.get(j + 1) == Some(&b'\n') && !triple && strings {
                return None;
            }
            j += 2;
            continue;
        }
        if c == quote {
            if !triple {
                return Some(j + 1);
            }
            if b.get(j + 1) == Some(&quote) && b.get(j + 2) == Some(&quote) {
                return Some(j + 3);
            }
        }
        j += 1;
    }
    None
}

/// Line and column (1-based) of byte offset `at`.
fn position(sql: &str, at: usize) -> String {
    let before = &sql[..at.min(sql.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    format!("line {line}, column {col}")
}

/// Words that start or belong to statements other than a query (DML, DDL, scripting, transactions, access
/// control). None of them is valid unquoted in a query, except as a column or table name, which can be quoted.
const NOT_IN_A_QUERY: &[&str] = &[
    "INSERT", "UPDATE", "DELETE", "MERGE", "TRUNCATE", "CREATE", "DROP", "ALTER", "UNDROP",
    "EXPORT", "LOAD", "DECLARE", "SET", "BEGIN", "COMMIT", "ROLLBACK", "CALL", "EXECUTE", "GRANT",
    "REVOKE", "ASSERT", "RAISE", "LOOP", "WHILE",
];

/// Checks that `sql` is one read-only query and returns it ready to be spliced: leading and trailing comments,
/// whitespace and a final `;` removed. Every refusal names the field `sql` and says what to change.
pub fn check(sql: &str) -> Result<String, ParseError> {
    let refuse = |msg: String| ParseError::new(FIELD, msg);
    if sql.len() > MAX_SQL_BYTES {
        return Err(refuse(format!(
            "the segment SQL is {} bytes; BigQuery takes at most {MAX_SQL_BYTES}",
            sql.len()
        )));
    }
    let tokens =
        tokenize(sql).map_err(|e| refuse(format!("{} ({})", e.message, position(sql, e.at))))?;
    let mut sig: Vec<Token<'_>> = tokens
        .into_iter()
        .filter(|t| t.kind != TokenKind::Comment)
        .collect();
    if sig.last().is_some_and(|t| t.is_symbol(";")) {
        sig.pop();
    }
    let (Some(first), Some(last)) = (sig.first().copied(), sig.last().copied()) else {
        return Err(refuse("the segment SQL is empty".into()));
    };
    let mut depth: usize = 0;
    for (n, t) in sig.iter().enumerate() {
        if t.is_symbol(";") {
            return Err(refuse(format!(
                "a segment is one statement: remove the ';' at {} and what follows it",
                position(sql, t.start)
            )));
        }
        if t.is_symbol("(") {
            depth += 1;
        } else if t.is_symbol(")") {
            depth = depth.checked_sub(1).ok_or_else(|| {
                refuse(format!(
                    "the ')' at {} closes a parenthesis that was never opened",
                    position(sql, t.start)
                ))
            })?;
        }
        let after_dot = n > 0 && sig[n - 1].is_symbol(".");
        if t.kind == TokenKind::Word && !after_dot {
            let upper = t.text.to_ascii_uppercase();
            if NOT_IN_A_QUERY.contains(&upper.as_str()) {
                let next = sig.get(n + 1).map(|t| t.text.to_ascii_uppercase());
                let what = match (upper.as_str(), next.as_deref()) {
                    ("EXPORT", Some("DATA")) => {
                        "EXPORT DATA is not allowed in a segment (segcast exports the targets itself)".to_owned()
                    }
                    ("CREATE", Some("TEMP" | "TEMPORARY")) => format!(
                        "CREATE {} FUNCTION/TABLE is not allowed in a segment: a segment is one SELECT, without \
                         scripts or temporary objects",
                        next.unwrap_or_default()
                    ),
                    _ => format!(
                        "{upper} is not allowed in a segment: a segment only reads, as one SELECT (if `{}` is a \
                         column or table name, quote it in backticks)",
                        t.text
                    ),
                };
                return Err(refuse(format!("{what} (at {})", position(sql, t.start))));
            }
        }
    }
    if depth > 0 {
        return Err(refuse(format!(
            "{depth} parenthesis(es) opened and never closed"
        )));
    }
    let opening = sig.iter().find(|t| !t.is_symbol("("));
    if !opening.is_some_and(|t| t.is_word("SELECT") || t.is_word("WITH")) {
        return Err(refuse(
            "a segment is one SELECT statement (it may start with WITH)".into(),
        ));
    }
    Ok(sql[first.start..last.end()].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(sql: &str) -> String {
        check(sql).unwrap_or_else(|e| panic!("{sql:?} refused: {}", e.message))
    }

    fn refused(sql: &str) -> String {
        match check(sql) {
            Ok(s) => panic!("{sql:?} accepted as {s:?}"),
            Err(e) => {
                assert_eq!(e.field, "sql");
                e.message
            }
        }
    }

    #[test]
    fn queries_are_accepted_and_trimmed() {
        assert_eq!(ok("  SELECT user_id FROM t ;  "), "SELECT user_id FROM t");
        assert_eq!(ok("select 1"), "select 1");
        assert_eq!(
            ok("WITH a AS (SELECT 1 AS x) SELECT * FROM a"),
            "WITH a AS (SELECT 1 AS x) SELECT * FROM a"
        );
        assert_eq!(
            ok("(SELECT 1) UNION ALL (SELECT 2)"),
            "(SELECT 1) UNION ALL (SELECT 2)"
        );
        // Comments around the query go; a trailing line comment would swallow the `)` it is spliced before.
        assert_eq!(
            ok("-- vips\nSELECT u FROM t -- all of them"),
            "SELECT u FROM t"
        );
        assert_eq!(ok("SELECT u FROM t; -- done"), "SELECT u FROM t");
        assert_eq!(
            ok("/* a */ SELECT u /* b */ FROM t # c"),
            "SELECT u /* b */ FROM t"
        );
        // Column names that are statement words, quoted or as a path, are fine.
        ok("SELECT `update`, t.delete, `set` FROM t");
        ok(
            "SELECT * FROM t FOR SYSTEM_TIME AS OF TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 1 HOUR)",
        );
        ok("SELECT REPLACE(name, 'a', 'b'), IF(x > 1, 'y', 'n'), REPEAT('-', 3) FROM t");
    }

    #[test]
    fn semicolons_and_keywords_inside_literals_and_comments_are_not_statements() {
        for sql in [
            "SELECT user_id FROM t WHERE note = 'a; DROP TABLE x'",
            "SELECT user_id FROM t WHERE note = \"it's; DELETE\"",
            "SELECT user_id FROM t WHERE note = '''multi\nline; INSERT'''",
            "SELECT user_id FROM t WHERE note = \"\"\"a\"\"; b\"\"\"",
            "SELECT user_id FROM t WHERE note = 'esc\\'aped; DROP'",
            "SELECT user_id FROM t WHERE REGEXP_CONTAINS(note, r'^a;b\\d{3}$')",
            "SELECT user_id FROM t WHERE b = b'\\x00;'",
            "SELECT user_id FROM `p.d.t;drop` -- ; DROP TABLE t\n",
            "SELECT user_id /* ; DELETE FROM t; */ FROM t",
            "SELECT user_id FROM t # ; UPDATE t SET x = 1",
        ] {
            ok(sql);
        }
    }

    #[test]
    fn second_statements_are_refused_wherever_they_hide() {
        for sql in [
            "SELECT 1; DROP TABLE t",
            "SELECT 1; SELECT 2",
            "SELECT 1;;",
            "SELECT 1 -- comment\n; DELETE FROM t",
            "SELECT 1 /* comment */; DELETE FROM t",
            "SELECT 'a;b'; DELETE FROM t",
            "SELECT `x;` ; TRUNCATE TABLE t",
        ] {
            let m = refused(sql);
            assert!(m.contains("one statement"), "{sql:?}: {m}");
        }
    }

    #[test]
    fn writes_ddl_scripting_and_exports_are_refused_with_a_clear_message() {
        for (sql, says) in [
            ("DELETE FROM t WHERE true", "DELETE is not allowed"),
            ("INSERT INTO t VALUES (1)", "INSERT is not allowed"),
            ("UPDATE t SET x = 1 WHERE true", "UPDATE is not allowed"),
            ("MERGE t USING s ON true WHEN MATCHED THEN DELETE", "MERGE"),
            ("CREATE TABLE x AS SELECT 1", "CREATE is not allowed"),
            (
                "CREATE TEMP FUNCTION f() AS (1); SELECT f()",
                "CREATE TEMP FUNCTION",
            ),
            ("DROP TABLE t", "DROP"),
            ("ALTER TABLE t ADD COLUMN x INT64", "ALTER"),
            ("TRUNCATE TABLE t", "TRUNCATE"),
            (
                "EXPORT DATA OPTIONS(uri='gs://b/*') AS SELECT 1",
                "EXPORT DATA",
            ),
            ("DECLARE x INT64; SELECT x", "DECLARE"),
            ("BEGIN SELECT 1; END", "BEGIN"),
            ("CALL proc()", "CALL"),
            ("EXECUTE IMMEDIATE 'DROP TABLE t'", "EXECUTE"),
            ("SET x = 1", "SET"),
            (
                "GRANT `roles/bigquery.dataViewer` ON TABLE t TO 'user:a@b'",
                "GRANT",
            ),
            ("LOAD DATA INTO t FROM FILES(uris=['gs://b/x'])", "LOAD"),
            ("WITH a AS (SELECT 1) DELETE FROM t WHERE true", "DELETE"),
            (
                "SELECT * FROM t WHERE x IN (SELECT 1) AND EXISTS (DELETE FROM t)",
                "DELETE",
            ),
            ("ASSERT (SELECT 1) = 1", "ASSERT"),
        ] {
            let m = refused(sql);
            assert!(m.contains(says), "{sql:?}: {m}");
        }
    }

    #[test]
    fn malformed_sql_is_refused_before_bigquery_sees_it() {
        for (sql, says) in [
            ("", "empty"),
            ("  ;  ", "empty"),
            ("-- only a comment", "empty"),
            ("SELECT 'unclosed", "never closed"),
            ("SELECT \"a\nb\"", "never closed"),
            ("SELECT '''unclosed", "never closed"),
            ("SELECT `unclosed", "never closed"),
            ("SELECT 1 /* unclosed", "never closed"),
            ("SELECT 1) AS s, (SELECT 2", "never opened"),
            ("SELECT (1", "never closed"),
            ("VALUES (1)", "one SELECT"),
            ("user_id FROM t", "one SELECT"),
        ] {
            let m = refused(sql);
            assert!(m.contains(says), "{sql:?}: {m}");
        }
        assert!(refused("SELECT 1\nFROM t WHERE 'x").contains("line 2, column 14"));
        let big = format!("SELECT '{}'", "x".repeat(MAX_SQL_BYTES));
        assert!(refused(&big).contains("at most"));
    }

    #[test]
    fn tokens_cover_strings_identifiers_and_comments() {
        let t = tokenize("SELECT r'a\\'b' AS `c``d`, rb\"x\" -- e\n/* f */ 1.5e-3").unwrap();
        let kinds: Vec<_> = t.iter().map(|t| (t.kind, t.text)).collect();
        assert_eq!(
            kinds,
            vec![
                (TokenKind::Word, "SELECT"),
                (TokenKind::Str, "r'a\\'b'"),
                (TokenKind::Word, "AS"),
                (TokenKind::QuotedIdent, "`c`"),
                (TokenKind::QuotedIdent, "`d`"),
                (TokenKind::Symbol, ","),
                (TokenKind::Str, "rb\"x\""),
                (TokenKind::Comment, "-- e"),
                (TokenKind::Comment, "/* f */"),
                (TokenKind::Number, "1.5e-3"),
            ]
        );
    }
}
