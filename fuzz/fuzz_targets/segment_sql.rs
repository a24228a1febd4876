//! The segment SQL pre-parse: any text in, a refusal with a message or the SQL to splice out, never a panic.
//! Tokens are in order, inside the text, and only whitespace lies between them; an accepted segment is a slice
//! of the input, holds no statement separator, and is accepted again as itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use segcast::segment_sql::{TokenKind, check, tokenize};

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(tokens) = tokenize(sql) {
        let mut at = 0;
        for t in &tokens {
            assert!(t.start >= at && t.end() <= sql.len() && !t.text.is_empty());
            assert!(sql[at..t.start].bytes().all(|b| b.is_ascii_whitespace()));
            assert_eq!(&sql[t.start..t.end()], t.text);
            at = t.end();
        }
        assert!(sql[at..].bytes().all(|b| b.is_ascii_whitespace()));
    }
    match check(sql) {
        Ok(out) => {
            assert!(sql.contains(out.as_str()));
            assert_eq!(check(&out).as_ref(), Ok(&out));
            let tokens = tokenize(&out).expect("an accepted segment tokenizes");
            assert!(!tokens.iter().any(|t| t.kind == TokenKind::Symbol && t.text == ";"));
        }
        Err(e) => assert!(e.field == "sql" && !e.message.is_empty()),
    }
});
