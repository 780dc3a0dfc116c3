//! Log flags and setup: text or JSON, filtered by a tracing `EnvFilter`.

use anyhow::Context as _;

/// Log output format.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The log flags of every binary (`#[command(flatten)]`).
#[derive(clap::Args, Clone, Debug)]
pub struct LogArgs {
    /// Log format.
    #[arg(long, env = "WFE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `wfe_controller=debug`.
    #[arg(long, env = "WFE_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
}

impl LogArgs {
    /// Installs the global subscriber; a bad filter is an error naming the flag.
    pub fn init(&self) -> anyhow::Result<()> {
        let filter = tracing_subscriber::EnvFilter::try_new(&self.log_level)
            .with_context(|| format!("--log-level {:?} is not a valid filter", self.log_level))?;
        let builder = tracing_subscriber::fmt().with_env_filter(filter);
        match self.log_format {
            LogFormat::Text => builder.init(),
            LogFormat::Json => builder.json().init(),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_installs_the_global_subscriber_and_a_bad_filter_names_the_flag() {
        let bad = LogArgs {
            log_format: LogFormat::Text,
            log_level: "info,=[".into(),
        };
        let err = bad.init().unwrap_err().to_string();
        assert!(
            err.contains("--log-level \"info,=[\" is not a valid filter"),
            "{err}"
        );
        assert!(!tracing::dispatcher::has_been_set());
        let good = LogArgs {
            log_format: LogFormat::Json,
            log_level: "info".into(),
        };
        good.init().unwrap();
        assert!(tracing::dispatcher::has_been_set());
    }
}
