//! Source files and located problems: every configuration problem names `file:line:column`.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A configuration file's text, kept so byte spans can be turned into line and column.
#[derive(Clone, Debug)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
    line_starts: Vec<usize>,
}

impl SourceFile {
    pub fn new(path: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        let text = text.into();
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self {
            path: path.into(),
            text,
            line_starts,
        }
    }

    /// Reads a file; an unreadable file is a single problem located at the path.
    pub fn read(path: &Path) -> Result<Self, Problems> {
        let bytes = std::fs::read(path).map_err(|e| {
            Problems::single(Problem::unlocated(format!(
                "cannot read {}: {e}",
                path.display()
            )))
        })?;
        match String::from_utf8(bytes) {
            Ok(text) => Ok(Self::new(path, text)),
            Err(e) => {
                // Locate the first bad byte in the valid text before it.
                let valid = e.utf8_error().valid_up_to();
                let bytes = e.into_bytes();
                let prefix = String::from_utf8_lossy(&bytes[..valid]).into_owned();
                let location = Self::new(path, prefix).locate(Some(valid..valid));
                Err(Problems::single(
                    Problem::at(
                        location,
                        format!(
                            "{} is not valid UTF-8 text (byte 0x{:02x})",
                            path.display(),
                            bytes[valid]
                        ),
                    )
                    .with_hint("save the file as UTF-8"),
                ))
            }
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset) - 1;
        let start = self.line_starts[line];
        let column = self.text[start..offset].chars().count() + 1;
        (line + 1, column)
    }

    /// Location of a span (its start), or of the file when there is no span.
    pub fn locate(&self, span: Option<Range<usize>>) -> Location {
        match span {
            Some(span) => {
                let (line, column) = self.line_col(span.start);
                Location {
                    file: self.path.clone(),
                    line,
                    column,
                }
            }
            None => Location {
                file: self.path.clone(),
                line: 1,
                column: 1,
            },
        }
    }
}

/// `file:line:column`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// One thing wrong with the input: where, what, and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub location: Option<Location>,
    pub message: String,
    pub hint: Option<String>,
}

impl Problem {
    pub fn at(location: Location, message: impl Into<String>) -> Self {
        Self {
            location: Some(location),
            message: message.into(),
            hint: None,
        }
    }
    pub fn unlocated(message: impl Into<String>) -> Self {
        Self {
            location: None,
            message: message.into(),
            hint: None,
        }
    }
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(location) = &self.location {
            write!(f, "{location}: ")?;
        }
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " ({hint})")?;
        }
        Ok(())
    }
}

/// Every problem found in one validation pass. Validation never stops at the first.
#[derive(Clone, Debug, Default, PartialEq, Eq, thiserror::Error)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    pub fn single(problem: Problem) -> Self {
        Self(vec![problem])
    }
    pub fn push(&mut self, problem: Problem) {
        self.0.push(problem);
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn extend(&mut self, other: Problems) {
        self.0.extend(other.0);
    }
    /// `Ok(value)` when no problem was recorded.
    pub fn into_result<T>(self, value: T) -> Result<T, Problems> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "{n} problem{} found; nothing was run:",
            if n == 1 { "" } else { "s" }
        )?;
        for problem in &self.0 {
            writeln!(f, "  {problem}")?;
        }
        Ok(())
    }
}
