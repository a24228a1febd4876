//! The export-file reader: a file cut into chunks of any sizes (the first bytes choose them) gives the same
//! lines, positions and recipients as the file split at once; memory stays within the longest line allowed plus
//! one chunk; nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use segcast::domain::DeliveryMode;
use segcast::pipeline::export_file::{LineSplitter, Next, read_all};

const MAX_LINE: usize = 256;

fuzz_target!(|data: &[u8]| {
    let Some((&shape, rest)) = data.split_first() else {
        return;
    };
    let mode = if shape & 1 == 0 { DeliveryMode::Multicast } else { DeliveryMode::Push };
    let chunk = 1 + usize::from(shape >> 1);
    let chunks: Vec<&[u8]> = rest.chunks(chunk).collect();

    // Reference: the whole file split on '\n' (a final line without '\n' counts; an empty tail does not).
    let mut expected: Vec<(&[u8], u64)> = Vec::new();
    let mut pos = 0u64;
    let mut too_long = false;
    let mut parts: Vec<&[u8]> = rest.split(|b| *b == b'\n').collect();
    if parts.last().is_some_and(|l| l.is_empty()) {
        parts.pop();
    }
    let n = parts.len();
    for (i, l) in parts.into_iter().enumerate() {
        if l.len() > MAX_LINE {
            too_long = true;
            break;
        }
        let has_nl = i + 1 < n || rest.ends_with(b"\n");
        pos += l.len() as u64 + u64::from(has_nl);
        expected.push((l, pos));
    }

    let mut s = LineSplitter::with_max_line(0, MAX_LINE);
    let mut it = chunks.iter();
    let mut got: Vec<(Vec<u8>, u64)> = Vec::new();
    let mut failed = false;
    loop {
        assert!(s.buffered() <= MAX_LINE + chunk + 1);
        match s.next_line() {
            Ok(Next::NeedMore) => match it.next() {
                Some(c) => s.push(c),
                None => s.finish(),
            },
            Ok(Next::End) => break,
            Ok(Next::Line(l)) => {
                let l = l.to_vec();
                got.push((l, s.position()));
            }
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert_eq!(failed, too_long);
    let n = got.len();
    assert_eq!(&got[..], &expected.iter().map(|(l, p)| (l.to_vec(), *p)).collect::<Vec<_>>()[..n]);
    if !failed {
        assert_eq!(n, expected.len());
    }
    let _ = read_all(chunks.iter().copied(), mode, MAX_LINE);
});
