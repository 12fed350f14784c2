//! Routing: shell-style globs over object keys (`*`, `**`, `?`, `[a-z]`, `[!x]`), matched by
//! `globset` (ripgrep's).
//!
//! `*` and `?` never cross a `/`; `**` crosses any number of them, and `**/` also matches no
//! directory at all, so `raw/**/*.csv` matches both `raw/a.csv` and `raw/2026/11/a.csv`.
//! `globset` gives `**` that meaning only as a whole path component (`raw/**/x`, `**/x`,
//! `raw/**`); [`translate`] rewrites every other `**` (`**.csv`, `a**b`) into alternatives that
//! say the same, and escapes `{` and `}`, which are literal in our patterns.

use std::fmt;

use globset::{ErrorKind, GlobBuilder, GlobMatcher};

/// A compiled glob pattern.
#[derive(Clone)]
pub struct Glob {
    source: String,
    matcher: GlobMatcher,
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Glob({:?})", self.source)
    }
}

impl PartialEq for Glob {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Glob {}

/// Why a glob pattern does not compile.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid glob {pattern:?}: {reason}")]
pub struct GlobError {
    pattern: String,
    reason: String,
}

impl Glob {
    /// Compiles a pattern.
    pub fn new(pattern: &str) -> Result<Glob, GlobError> {
        if pattern.is_empty() {
            return Err(GlobError {
                pattern: String::new(),
                reason: "is empty (leave `glob` out to match every key)".to_owned(),
            });
        }
        if unescaped(pattern).contains("***") {
            return Err(GlobError {
                pattern: pattern.to_owned(),
                reason: "at most two stars in a row: `*` within a folder, `**` across folders"
                    .to_owned(),
            });
        }
        let glob = GlobBuilder::new(&translate(pattern))
            .literal_separator(true)
            .backslash_escape(true)
            .empty_alternates(true)
            .build()
            .map_err(|error| GlobError {
                pattern: pattern.to_owned(),
                reason: match error.kind() {
                    ErrorKind::UnclosedClass => "unclosed '['".to_owned(),
                    ErrorKind::InvalidRange(..) => "range out of order in '[...]'".to_owned(),
                    other => other.to_string(),
                },
            })?;
        Ok(Glob {
            source: pattern.to_owned(),
            matcher: glob.compile_matcher(),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `key` matches the whole pattern.
    pub fn is_match(&self, key: &str) -> bool {
        self.matcher.is_match(key)
    }
}

/// The pattern without escaped characters and `[...]` classes, where a star is literal.
fn unescaped(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' if !in_class => {
                chars.next();
                out.push(' ');
            }
            '[' if !in_class => {
                in_class = true;
                out.push(' ');
            }
            ']' if in_class => {
                in_class = false;
                out.push(' ');
            }
            _ if in_class => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Our pattern in `globset`'s syntax, with the same meaning.
fn translate(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' if i + 1 < chars.len() => {
                out.push('\\');
                out.push(chars[i + 1]);
                i += 2;
            }
            '[' => {
                // A class is copied as is: `]` first is a member, `!`/`^` first negates.
                let mut j = i + 1;
                if matches!(chars.get(j), Some('!' | '^')) {
                    j += 1;
                }
                if chars.get(j) == Some(&']') {
                    j += 1;
                }
                while j < chars.len() && chars[j] != ']' {
                    j += 1;
                }
                let end = (j + 1).min(chars.len());
                out.extend(&chars[i..end]);
                i = end;
            }
            c @ ('{' | '}') => {
                out.push('\\');
                out.push(c);
                i += 1;
            }
            '*' if chars.get(i + 1) == Some(&'*') => {
                let mut j = i;
                while chars.get(j) == Some(&'*') {
                    j += 1;
                }
                let after_boundary = i == 0 || chars[i - 1] == '/';
                match chars.get(j) {
                    // `**/` and `**` as whole components mean to globset what they mean to us.
                    Some('/') if after_boundary => out.push_str("**/"),
                    None if after_boundary => out.push_str("**"),
                    // `x**/`: nothing, or anything ending in `/`.
                    Some('/') => out.push_str("{,*/**/}"),
                    // `x**` at the end: anything.
                    None => out.push_str("{*,*/**}"),
                    // `**x`: anything, then x.
                    Some(_) => out.push_str("{*,*/**/*}"),
                }
                i = if chars.get(j) == Some(&'/') { j + 1 } else { j };
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::Glob;

    #[test]
    fn matches_like_a_shell_with_globstar() {
        let table = [
            ("*.csv", "a.csv", true),
            ("*.csv", "dir/a.csv", false),
            ("**.csv", "dir/a.csv", true),
            ("raw/**/*.csv", "raw/a.csv", true),
            ("raw/**/*.csv", "raw/2026/11/a.csv", true),
            ("raw/**/*.csv", "raw/2026/11/a.json", false),
            ("raw/**", "raw/x/y", true),
            ("raw/**", "other/raw/x", false),
            ("data-202?-*.parquet", "data-2026-11.parquet", true),
            ("data-202?-*.parquet", "data-20261-11.parquet", false),
            ("data-202?-*.parquet", "data-202/-x.parquet", false),
            ("[a-c]*.txt", "banana.txt", true),
            ("[a-c]*.txt", "date.txt", false),
            ("[!a-c]*.txt", "date.txt", true),
            ("[]]x", "]x", true),
            ("with space/*.csv", "with space/café.csv", true),
            ("literal\\*.csv", "literal*.csv", true),
            ("literal\\*.csv", "literalx.csv", false),
            // `**` inside a component still crosses directories.
            ("a**b", "a/x/yb", true),
            ("a**b", "ab", true),
            ("raw/**.csv", "raw/2026/11/a.csv", true),
            ("raw/**.csv", "raw/a.json", false),
            ("a**/b", "ab", true),
            ("a**/b", "ax/b", true),
            ("a**/b", "a/x/b", true),
            ("a**/b", "axb", false),
            ("a**", "a/x/y", true),
            ("a**", "b/a", false),
            ("*\\**.csv", "a*b.csv", true),
            // Braces and commas are literal.
            ("a{b,c}", "a{b,c}", true),
            ("a{b,c}", "ab", false),
            ("[{]x}", "{x}", true),
            ("x\\{y", "x{y", true),
        ];
        for (pattern, key, want) in table {
            let glob = Glob::new(pattern).unwrap();
            assert_eq!(glob.is_match(key), want, "{pattern:?} vs {key:?}");
        }
    }

    #[test]
    fn bad_patterns_are_errors() {
        assert!(
            Glob::new("[abc")
                .unwrap_err()
                .to_string()
                .contains("unclosed")
        );
        assert!(
            Glob::new("[z-a]")
                .unwrap_err()
                .to_string()
                .contains("out of order")
        );
        assert!(Glob::new("").unwrap_err().reason.starts_with("is empty"));
        for stars in ["***", "raw/***/x.csv", "a****"] {
            let err = Glob::new(stars).unwrap_err().to_string();
            assert!(err.contains("at most two stars in a row"), "{err}");
        }
        assert!(
            Glob::new("[*][*][*]x").is_ok(),
            "stars in classes are literal"
        );
        assert!(Glob::new("\\*\\*\\*").is_ok(), "escaped stars are literal");
    }

    #[test]
    fn many_stars_stay_linear() {
        let glob = Glob::new("*a*a*a*a*a*a*a*a*a*b").unwrap();
        let key = "a".repeat(5000);
        assert!(!glob.is_match(&key));
    }
}
