//! A `regex` warninglist entry is a PHP `preg_match` pattern (`/^abuse@/i`): delimiters, then
//! modifiers. This reads it as PHP's PCRE extension does (`pcre_get_compiled_regex_cache`) and
//! gives the same pattern in the syntax of the `regex` crate, matched on bytes:
//!
//! - Leading white space is skipped; the delimiter is the next character, which must not be a
//!   letter, a digit or a backslash. `(`, `[`, `{` and `<` close with their pair (nesting
//!   counted); any other closes with itself. A backslash escapes the next character.
//! - Modifiers: `i` `m` `s` `x` `U` map to the crate's flags of the same meaning; `A` anchors at
//!   the start; `u` turns on UTF-8 and Unicode classes (PHP sets `PCRE2_UCP` with it); without
//!   `u` the pattern is matched on bytes with ASCII classes and ASCII case folding, and a
//!   non-ASCII character in it stands for its UTF-8 bytes, as PCRE does. `D`, `S`, `X`, `J`,
//!   `n`, `r` change nothing that matters to a yes/no match on a trimmed value (MISP trims
//!   values before storing them). White space and newlines among the modifiers are ignored,
//!   as PHP ignores them.
//! - `\<` and `\>` are the literal characters in PCRE (word boundaries in the crate), and `\Z`
//!   ends the subject, as `\z` does on a trimmed value.
//!
//! A pattern PHP refuses (no delimiter, no closing delimiter, an unknown modifier such as `g`)
//! makes `preg_match` warn and return false: MISP never matches it, so neither do we, and the
//! loader warns. A pattern PHP takes but the crate cannot compile (look-around,
//! back-references) is an error at load.

use std::fmt::Write as _;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum PhpRegex {
    /// The pattern in the `regex` crate's syntax, for `regex::bytes`.
    Usable(String),
    /// Why `preg_match` refuses it.
    Refused(String),
}

pub(super) fn translate(source: &str) -> PhpRegex {
    match split(source) {
        Ok((body, modifiers)) => PhpRegex::Usable(assemble(body, &modifiers)),
        Err(refusal) => PhpRegex::Refused(refusal.to_string()),
    }
}

#[derive(Default)]
struct Modifiers {
    flags: String,
    unicode: bool,
    anchored: bool,
}

fn closing_of(delimiter: char) -> char {
    match delimiter {
        '(' => ')',
        '[' => ']',
        '{' => '}',
        '<' => '>',
        other => other,
    }
}

/// Why `preg_match` refuses a pattern before compiling it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum Refusal {
    #[error("empty regular expression")]
    Empty,
    #[error("the delimiter must not be alphanumeric, a backslash or NUL")]
    BadDelimiter,
    #[error("no ending delimiter {0:?}")]
    NoEndingDelimiter(char),
    #[error("the /e modifier is no longer supported by PHP")]
    EvalModifier,
    #[error("unknown modifier {0:?}")]
    UnknownModifier(char),
}

/// The pattern between the delimiters, and the modifiers after them.
fn split(source: &str) -> Result<(&str, Modifiers), Refusal> {
    let trimmed = source.trim_start_matches([' ', '\t', '\n', '\r', '\x0B', '\x0C']);
    let mut chars = trimmed.char_indices();
    let Some((_, delimiter)) = chars.next() else {
        return Err(Refusal::Empty);
    };
    if delimiter.is_ascii_alphanumeric() || delimiter == '\\' || delimiter == '\0' {
        return Err(Refusal::BadDelimiter);
    }
    let closing = closing_of(delimiter);
    let body_start = delimiter.len_utf8();
    let mut depth = 1usize;
    let mut body_end = None;
    while let Some((position, c)) = chars.next() {
        if c == '\\' {
            chars.next();
        } else if c == closing && closing != delimiter {
            depth -= 1;
            if depth == 0 {
                body_end = Some(position);
                break;
            }
        } else if c == delimiter && closing != delimiter {
            depth += 1;
        } else if c == closing {
            body_end = Some(position);
            break;
        }
    }
    let Some(body_end) = body_end else {
        return Err(Refusal::NoEndingDelimiter(closing));
    };
    let mut modifiers = Modifiers::default();
    for modifier in trimmed[body_end + closing.len_utf8()..].chars() {
        match modifier {
            'i' | 'm' | 's' | 'x' | 'U' => {
                if !modifiers.flags.contains(modifier) {
                    modifiers.flags.push(modifier);
                }
            }
            'u' => modifiers.unicode = true,
            'A' => modifiers.anchored = true,
            'D' | 'S' | 'X' | 'J' | 'n' | 'r' | ' ' | '\n' | '\r' => {}
            'e' => return Err(Refusal::EvalModifier),
            other => return Err(Refusal::UnknownModifier(other)),
        }
    }
    Ok((&trimmed[body_start..body_end], modifiers))
}

fn assemble(body: &str, modifiers: &Modifiers) -> String {
    let mut pattern = String::with_capacity(body.len() + 16);
    let _ = write!(
        pattern,
        "(?{}{})",
        modifiers.flags,
        if modifiers.unicode { "u" } else { "-u" }
    );
    if modifiers.anchored {
        pattern.push_str(r"\A(?:");
    }
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if !c.is_ascii() && !modifiers.unicode {
            push_bytes(&mut pattern, c);
            continue;
        }
        if c != '\\' {
            pattern.push(c);
            continue;
        }
        match chars.next() {
            Some(literal @ ('<' | '>')) => pattern.push(literal),
            Some('Z') => pattern.push_str(r"\z"),
            Some(escaped) if !escaped.is_ascii() && !modifiers.unicode => {
                push_bytes(&mut pattern, escaped);
            }
            Some(escaped) => {
                pattern.push('\\');
                pattern.push(escaped);
            }
            None => pattern.push('\\'),
        }
    }
    if modifiers.anchored {
        // In extended mode a trailing `#` comment would swallow the `)`.
        pattern.push_str(if modifiers.flags.contains('x') {
            "\n)"
        } else {
            ")"
        });
    }
    pattern
}

/// Without `u`, PCRE reads a non-ASCII character as its UTF-8 bytes: `é+` repeats the last
/// byte and `[é]` is a class of two bytes. The crate reads a character as one unit, and
/// refuses it in a class outside Unicode mode, so the bytes are written out.
fn push_bytes(pattern: &mut String, c: char) {
    let mut buffer = [0; 4];
    for byte in c.encode_utf8(&mut buffer).bytes() {
        let _ = write!(pattern, "\\x{byte:02X}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usable(source: &str) -> regex::bytes::Regex {
        match translate(source) {
            PhpRegex::Usable(pattern) => regex::bytes::Regex::new(&pattern)
                .unwrap_or_else(|error| panic!("{source} -> {pattern}: {error}")),
            PhpRegex::Refused(reason) => panic!("{source} refused: {reason}"),
        }
    }

    fn matches(source: &str, subject: &str) -> bool {
        usable(source).is_match(subject.as_bytes())
    }

    #[test]
    fn delimiters_and_modifiers_read_as_php_reads_them() {
        assert!(matches(
            r"/^(security|abuse)\@.*\..*$/i",
            "ABUSE@example.org"
        ));
        assert!(!matches(
            r"/^(security|abuse)\@.*\..*$/",
            "ABUSE@example.org"
        ));
        assert!(matches("#a/b#", "xa/by"));
        assert!(matches(r"/a\/b/", "a/b"));
        assert!(matches("{a{2}}", "xaay"));
        assert!(!matches("{a{2}}", "xay"));
        assert!(matches("(a(b)c)", "abc"));
        assert!(matches("[a[bc]]", "ab"));
        assert!(matches("  \n/x/", "x"), "leading white space is skipped");
        assert!(
            matches("/x/i \n", "X"),
            "white space among modifiers is ignored"
        );
    }

    #[test]
    fn anchoring_ungreedy_dotall_multiline_and_extended_apply() {
        assert!(matches("/b/", "ab") && !matches("/b/A", "ab"));
        assert!(matches("/a|b/A", "b"), "A anchors the whole alternation");
        assert!(!matches("/a.b/", "a\nb") && matches("/a.b/s", "a\nb"));
        assert!(!matches("/^b$/", "a\nb") && matches("/^b$/m", "a\nb"));
        assert!(matches("/a b # comment/x", "ab"));
        assert!(matches("/a b # comment/xA", "ab"));
        let lazy = usable("/a+/U");
        assert_eq!(lazy.find(b"aaa").map(|m| m.len()), Some(1));
    }

    #[test]
    fn without_u_classes_and_case_folding_are_ascii_as_in_pcre() {
        assert!(!matches(r"/^\w$/", "é"));
        assert!(matches(r"/^\w$/u", "é"));
        assert!(!matches("/é/i", "É"));
        assert!(matches("/é/iu", "É"));
        assert!(
            matches("/é/", "café"),
            "a literal non-ASCII character matches its bytes"
        );
        assert!(matches("/^[é]+$/", "é"), "a class of its two bytes");
        assert!(
            usable("/^é+$/").is_match(b"\xC3\xA9\xA9"),
            "the quantifier repeats the last byte"
        );
        assert!(!matches("/^é+$/", "éé"));
        assert!(matches("/^é+$/u", "éé"), "with u the character is one unit");
    }

    #[test]
    fn pcre_escapes_that_differ_in_the_crate_keep_their_pcre_meaning() {
        assert!(matches(r"/\<b\>/", "a<b>c"));
        assert!(matches(r"/[\<]/", "<"));
        assert!(matches(r"/ab\Z/", "cab") && !matches(r"/ab\Z/", "abc"));
        assert!(
            matches(r"/a\\<b/", r"a\<b"),
            "an escaped backslash stays escaped"
        );
    }

    #[test]
    fn what_php_refuses_is_refused_with_the_reason() {
        for (source, reason) in [
            ("", "empty"),
            ("abc", "delimiter"),
            (r"\abc\", "delimiter"),
            ("/abc", "ending delimiter"),
            (r"/abc\/", "ending delimiter"),
            ("(abc", "ending delimiter"),
            ("/((?:\\+|00)1)?55501([0-9]{2})/g", "unknown modifier 'g'"),
            ("/a/e", "/e"),
        ] {
            match translate(source) {
                PhpRegex::Refused(found) => assert!(found.contains(reason), "{source}: {found}"),
                PhpRegex::Usable(pattern) => panic!("{source} taken as {pattern}"),
            }
        }
    }
}
