//! Routing: shell-style globs over object keys (`*`, `**`, `?`, `[a-z]`, `[!x]`).
//!
//! `*` and `?` never cross a `/`; `**` crosses any number of them, and `**/` also matches no
//! directory at all, so `raw/**/*.csv` matches both `raw/a.csv` and `raw/2026/11/a.csv`.
//! Matching simulates the pattern as an automaton: linear in key length, no backtracking.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    AnyChar,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    Star,
    DoubleStar,
    DoubleStarSlash,
}

/// A compiled glob pattern.
#[derive(Clone, PartialEq, Eq)]
pub struct Glob {
    source: String,
    tokens: Vec<Token>,
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Glob({:?})", self.source)
    }
}

/// Why a glob pattern does not compile.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid glob {pattern:?}: {reason}")]
pub struct GlobError {
    pattern: String,
    reason: &'static str,
}

impl Glob {
    /// Compiles a pattern.
    pub fn new(pattern: &str) -> Result<Glob, GlobError> {
        let error = |reason| GlobError {
            pattern: pattern.to_owned(),
            reason,
        };
        let chars: Vec<char> = pattern.chars().collect();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '*' if chars.get(i + 1) == Some(&'*') => {
                    if chars.get(i + 2) == Some(&'/') {
                        tokens.push(Token::DoubleStarSlash);
                        i += 3;
                    } else {
                        tokens.push(Token::DoubleStar);
                        i += 2;
                    }
                }
                '*' => {
                    tokens.push(Token::Star);
                    i += 1;
                }
                '?' => {
                    tokens.push(Token::AnyChar);
                    i += 1;
                }
                '[' => {
                    let mut j = i + 1;
                    let negated = matches!(chars.get(j), Some('!') | Some('^'));
                    if negated {
                        j += 1;
                    }
                    let mut ranges = Vec::new();
                    let mut first = true;
                    loop {
                        let Some(&c) = chars.get(j) else {
                            return Err(error("unclosed '['"));
                        };
                        if c == ']' && !first {
                            break;
                        }
                        first = false;
                        if chars.get(j + 1) == Some(&'-')
                            && chars.get(j + 2).is_some_and(|&e| e != ']')
                        {
                            let end = chars[j + 2];
                            if end < c {
                                return Err(error("range out of order in '[...]'"));
                            }
                            ranges.push((c, end));
                            j += 3;
                        } else {
                            ranges.push((c, c));
                            j += 1;
                        }
                    }
                    tokens.push(Token::Class { negated, ranges });
                    i = j + 1;
                }
                '\\' if i + 1 < chars.len() => {
                    tokens.push(Token::Literal(chars[i + 1]));
                    i += 2;
                }
                c => {
                    tokens.push(Token::Literal(c));
                    i += 1;
                }
            }
        }
        Ok(Glob {
            source: pattern.to_owned(),
            tokens,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `key` matches the whole pattern.
    pub fn is_match(&self, key: &str) -> bool {
        let n = self.tokens.len();
        let mut active = vec![false; n + 1];
        active[0] = true;
        self.close(&mut active);
        let mut next = vec![false; n + 1];
        for c in key.chars() {
            next.iter_mut().for_each(|slot| *slot = false);
            for (i, token) in self.tokens.iter().enumerate() {
                if !active[i] {
                    continue;
                }
                match token {
                    Token::Literal(l) if *l == c => next[i + 1] = true,
                    Token::AnyChar if c != '/' => next[i + 1] = true,
                    Token::Class { negated, ranges } => {
                        let inside = ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi);
                        if inside != *negated && c != '/' {
                            next[i + 1] = true;
                        }
                    }
                    Token::Star if c != '/' => next[i] = true,
                    Token::DoubleStar => next[i] = true,
                    Token::DoubleStarSlash => {
                        next[i] = true;
                        if c == '/' {
                            next[i + 1] = true;
                        }
                    }
                    _ => {}
                }
            }
            self.close(&mut next);
            if !next.iter().any(|&slot| slot) {
                return false;
            }
            std::mem::swap(&mut active, &mut next);
        }
        active[n]
    }

    /// Epsilon closure: star tokens may match nothing.
    fn close(&self, states: &mut [bool]) {
        for (i, token) in self.tokens.iter().enumerate() {
            if states[i]
                && matches!(
                    token,
                    Token::Star | Token::DoubleStar | Token::DoubleStarSlash
                )
            {
                states[i + 1] = true;
            }
        }
    }
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
            ("", "", true),
            ("", "a", false),
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
    }

    #[test]
    fn many_stars_stay_linear() {
        let glob = Glob::new("*a*a*a*a*a*a*a*a*a*b").unwrap();
        let key = "a".repeat(5000);
        assert!(!glob.is_match(&key));
    }
}
