//! Where the rules come from: the `[[rule]]` tables of the `--config` file (a mock's `file`
//! is relative to that file's folder) followed by one intercept rule per `--mitm` glob (flags
//! win over the file's `mitm` list). Compiled the same way at start and on every SIGHUP, and
//! every error names the file and, for a rule of the file, the rule and its line.

use std::path::{Path, PathBuf};

use super::{ConfigError, Settings};
use crate::rules::{RuleSet, RuleSpec};

/// The config file and the `--mitm` flags the rules are built from.
#[derive(Debug, Clone, Default)]
pub struct RulesSource {
    /// `--config FILE`, if given.
    pub path: Option<PathBuf>,
    /// `--mitm` flags (empty: the file's `mitm` list applies).
    pub mitm_flags: Vec<String>,
}

impl RulesSource {
    /// Read the config file again and compile its rules; `None` without a config file.
    pub fn compile(&self) -> Result<Option<RuleSet>, ConfigError> {
        let Some(path) = &self.path else {
            return Ok(None);
        };
        let file = Settings::from_file(path)?;
        let mitm = if self.mitm_flags.is_empty() {
            &file.mitm
        } else {
            &self.mitm_flags
        };
        self.compile_specs(&file.rule, mitm).map(Some)
    }

    /// Compile rules already read from the config file, then the `mitm` globs.
    pub fn compile_specs(
        &self,
        specs: &[RuleSpec],
        mitm: &[String],
    ) -> Result<RuleSet, ConfigError> {
        let dir = self
            .path
            .as_deref()
            .and_then(Path::parent)
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        RuleSet::compile(specs, mitm, dir).map_err(|e| match self.path.as_ref() {
            Some(path) if !e.from_flag => ConfigError::FileRule {
                path: path.clone(),
                source: e,
            },
            _ => ConfigError::Rule(e),
        })
    }
}
