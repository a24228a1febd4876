//! Reading a round's exported recipients files (newline-delimited JSON from BigQuery's `EXPORT DATA`), apart from
//! any I/O so it can be tested and fuzzed: [`LineSplitter`] cuts a stream of chunks into lines while tracking
//! the byte position (the fan-out checkpoint), and [`parse_recipient`] turns one line into a [`Recipient`].
//!
//! Memory is bounded whatever the file holds: a line longer than [`MAX_LINE_BYTES`] (or a file without line
//! breaks) is an error, never a buffer that grows with the file.

use crate::domain::{DeliveryMode, Recipient, UserId};

/// The longest line accepted: a user ID and the segment's personalisation columns.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

/// What [`LineSplitter::next_line`] has.
#[derive(Debug, PartialEq, Eq)]
pub enum Next<'a> {
    /// A line, without its `\n`.
    Line(&'a [u8]),
    /// No complete line is buffered: [`LineSplitter::push`] the next chunk, or [`LineSplitter::finish`].
    NeedMore,
    /// Every line has been returned.
    End,
}

/// Cuts chunks into lines. The last line of a file may lack its `\n`.
#[derive(Debug)]
pub struct LineSplitter {
    /// `carry[cursor..]` is read but not yet returned; compacted only when more is pushed.
    carry: Vec<u8>,
    cursor: usize,
    position: u64,
    eof: bool,
    max_line: usize,
}

impl LineSplitter {
    /// A splitter for a file read from byte `offset` (a line boundary).
    pub fn new(offset: u64) -> Self {
        Self::with_max_line(offset, MAX_LINE_BYTES)
    }

    pub fn with_max_line(offset: u64, max_line: usize) -> Self {
        Self {
            carry: Vec::new(),
            cursor: 0,
            position: offset,
            eof: false,
            max_line,
        }
    }

    /// The file position just after the last line returned (where the next line starts).
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Bytes buffered (at most the longest line allowed plus one chunk).
    pub fn buffered(&self) -> usize {
        self.carry.len()
    }

    /// Adds the next chunk of the file.
    pub fn push(&mut self, chunk: &[u8]) {
        self.carry.drain(..self.cursor);
        self.cursor = 0;
        self.carry.extend_from_slice(chunk);
    }

    /// The file has no more chunks.
    pub fn finish(&mut self) {
        self.eof = true;
    }

    /// The next line, or what is needed to get one. An error when a line is longer than allowed.
    pub fn next_line(&mut self) -> Result<Next<'_>, String> {
        let rest = &self.carry[self.cursor..];
        let too_long = || {
            format!(
                "a line of more than {} bytes (at byte {}): not an export of segcast's",
                self.max_line, self.position
            )
        };
        let (len, consumed) = match rest.iter().position(|b| *b == b'\n') {
            Some(i) if i > self.max_line => return Err(too_long()),
            Some(i) => (i, i + 1),
            None if rest.len() > self.max_line => return Err(too_long()),
            None if !self.eof => return Ok(Next::NeedMore),
            None if rest.is_empty() => return Ok(Next::End),
            None => (rest.len(), rest.len()),
        };
        let from = self.cursor;
        self.cursor += consumed;
        self.position += consumed as u64;
        Ok(Next::Line(&self.carry[from..from + len]))
    }
}

/// Whether a line holds nothing (blank lines are skipped, not recipients).
pub fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

/// One exported line: a JSON object with a `user_id` (a valid LINE user ID) and, for personalised content, the
/// segment's other columns.
pub fn parse_recipient(line: &[u8], mode: DeliveryMode) -> Result<Recipient, String> {
    let mut obj: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(line)
        .map_err(|e| format!("an exported line is not a JSON object: {e}"))?;
    let raw = obj
        .remove("user_id")
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let user_id = UserId::parse(&raw).map_err(|e| format!("exported target: {e}"))?;
    let attrs = match mode {
        DeliveryMode::Push => Some(obj),
        DeliveryMode::Multicast => None,
    };
    Ok(Recipient { user_id, attrs })
}

/// Reads a whole file given as chunks: the recipients with their line numbers (blank lines skipped). What the
/// fan-out does, without Cloud Storage (tests and fuzzing).
pub fn read_all<'c>(
    chunks: impl IntoIterator<Item = &'c [u8]>,
    mode: DeliveryMode,
    max_line: usize,
) -> Result<Vec<(u64, Recipient)>, String> {
    let mut chunks = chunks.into_iter();
    let mut lines = LineSplitter::with_max_line(0, max_line);
    let mut out = Vec::new();
    let mut line_no = 0u64;
    loop {
        match lines.next_line()? {
            Next::NeedMore => match chunks.next() {
                Some(c) => lines.push(c),
                None => lines.finish(),
            },
            Next::End => return Ok(out),
            Next::Line(l) => {
                if !is_blank(l) {
                    let r = parse_recipient(l, mode).map_err(|e| format!("line {line_no}: {e}"))?;
                    out.push((line_no, r));
                }
                line_no += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "Uaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "Ubbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn lines_of(chunks: &[&[u8]], max: usize) -> Result<Vec<(Vec<u8>, u64)>, String> {
        let mut s = LineSplitter::with_max_line(0, max);
        let mut chunks = chunks.iter();
        let mut out = Vec::new();
        loop {
            match s.next_line()? {
                Next::NeedMore => match chunks.next() {
                    Some(c) => s.push(c),
                    None => s.finish(),
                },
                Next::End => return Ok(out),
                Next::Line(l) => {
                    let l = l.to_vec();
                    out.push((l, s.position()));
                }
            }
        }
    }

    #[test]
    fn lines_split_across_chunks_keep_their_positions() {
        let got = lines_of(&[b"ab", b"c\nde", b"\n\nf"], 100).unwrap();
        assert_eq!(
            got,
            vec![
                (b"abc".to_vec(), 4),
                (b"de".to_vec(), 7),
                (b"".to_vec(), 8),
                (b"f".to_vec(), 9)
            ]
        );
        assert_eq!(lines_of(&[b"x\n"], 100).unwrap(), vec![(b"x".to_vec(), 2)]);
        assert_eq!(lines_of(&[], 100).unwrap(), vec![]);
    }

    #[test]
    fn a_file_without_line_breaks_is_an_error_not_a_growing_buffer() {
        // Regression (found by reading the old fan-out loop, which kept appending chunks until a '\n'): memory
        // is bounded by the longest line allowed plus one chunk.
        let mut s = LineSplitter::with_max_line(0, 10);
        let mut failed = false;
        for _ in 0..100 {
            s.push(b"xxxx");
            assert!(s.buffered() <= 10 + 4);
            match s.next_line() {
                Ok(Next::NeedMore) => {}
                Err(e) => {
                    assert!(e.contains("more than 10 bytes"), "{e}");
                    failed = true;
                    break;
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(failed);
        assert!(lines_of(&[b"0123456789\n"], 10).is_ok());
        assert!(lines_of(&[b"0123456789a\n"], 10).is_err());
    }

    #[test]
    fn recipients_are_parsed_and_checked() {
        let file =
            format!("{{\"user_id\":\"{A}\",\"name\":\"Aki\"}}\n\n  \n{{\"user_id\":\"{B}\"}}\r\n");
        let got = read_all([file.as_bytes()], DeliveryMode::Push, 1000).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].0, got[0].1.user_id.as_str()), (0, A));
        assert_eq!(got[0].1.attrs.as_ref().unwrap()["name"], "Aki");
        assert_eq!((got[1].0, got[1].1.user_id.as_str()), (3, B));
        let multicast = read_all([file.as_bytes()], DeliveryMode::Multicast, 1000).unwrap();
        assert!(multicast[0].1.attrs.is_none());
        for bad in [
            "[1]",
            "{\"user_id\":null}",
            "{\"user_id\":\"U123\"}",
            "{\"name\":\"x\"}",
            "{\"user_id\":\"Uaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"",
            "\u{0}",
        ] {
            let e = read_all([bad.as_bytes()], DeliveryMode::Push, 1000).unwrap_err();
            assert!(e.starts_with("line 0: "), "{bad:?}: {e}");
        }
    }
}
