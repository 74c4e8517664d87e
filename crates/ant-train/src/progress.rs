//! Progress of a training job, drawn by `indicatif`: on a terminal, one bar per stage and one
//! for the whole job, each with its rate and ETA; when stderr is not a terminal (a log file,
//! CI), plain lines at every twentieth of a stage instead of bars and carriage returns;
//! nothing when quiet. Log lines written through [`Progress::writer`] appear above the bars.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Where a job's progress goes. Cloning shares the bars.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    inner: Option<Arc<Inner>>,
}

#[derive(Debug)]
struct Inner {
    multi: MultiProgress,
    job: ProgressBar,
    terminal: bool,
}

/// `1h02m` / `4m05s` / `12s`.
fn duration(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}

impl Progress {
    /// No progress output.
    pub fn quiet() -> Self {
        Self { inner: None }
    }

    /// Progress on stderr: bars on a terminal, plain lines otherwise.
    pub fn stderr() -> Self {
        let terminal = std::io::stderr().is_terminal();
        let target = if terminal {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let multi = MultiProgress::with_draw_target(target);
        let job = multi.add(ProgressBar::new(0));
        job.set_style(
            ProgressStyle::with_template(
                "{prefix:>18} [{bar:30}] {percent:>3}% elapsed {elapsed_precise} eta {eta_precise}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        job.set_prefix("job");
        Self {
            inner: Some(Arc::new(Inner {
                multi,
                job,
                terminal,
            })),
        }
    }

    /// Whether nothing is shown.
    pub fn is_quiet(&self) -> bool {
        self.inner.is_none()
    }

    /// Sets the whole job's length in steps (every stage it will train, `done` of them
    /// already trained by an earlier run).
    pub fn set_job(&self, steps: u64, done: u64) {
        if let Some(inner) = &self.inner {
            inner.job.set_length(steps);
            inner.job.set_position(done.min(steps));
            inner.job.reset_eta();
        }
    }

    /// A bar for one stage of `steps` steps, `done` of them already trained.
    pub(crate) fn stage(&self, name: &str, steps: u64, done: u64) -> StageProgress {
        let Some(inner) = &self.inner else {
            return StageProgress { bar: None };
        };
        let bar = inner
            .multi
            .insert_before(&inner.job, ProgressBar::new(steps));
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>18} [{bar:30}] {pos}/{len} eta {eta_precise} {msg}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(name.to_string());
        bar.set_position(done.min(steps));
        bar.reset_eta();
        inner.job.inc(done.min(steps));
        StageProgress {
            bar: Some(StageBar {
                bar,
                job: inner.job.clone(),
                terminal: inner.terminal,
                every: (steps / 20).max(1),
                name: name.to_string(),
            }),
        }
    }

    /// A writer for log lines (`tracing_subscriber::fmt().with_writer(move || p.writer())`):
    /// each write goes to stderr with the bars cleared and redrawn below it.
    pub fn writer(&self) -> ProgressWriter {
        ProgressWriter {
            multi: self.inner.as_ref().map(|inner| inner.multi.clone()),
        }
    }
}

/// Log output that does not tear the progress bars ([`Progress::writer`]).
#[derive(Debug)]
pub struct ProgressWriter {
    multi: Option<MultiProgress>,
}

impl Write for ProgressWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &self.multi {
            Some(multi) => multi.suspend(|| std::io::stderr().write_all(buf))?,
            None => std::io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// One stage's bar.
#[derive(Debug)]
pub(crate) struct StageProgress {
    bar: Option<StageBar>,
}

#[derive(Debug)]
struct StageBar {
    bar: ProgressBar,
    job: ProgressBar,
    terminal: bool,
    every: u64,
    name: String,
}

impl StageProgress {
    /// One step done; `message` describes it (epoch, loss, rate).
    pub fn step(&self, message: impl FnOnce() -> String) {
        let Some(stage) = &self.bar else {
            return;
        };
        stage.bar.inc(1);
        stage.job.inc(1);
        let position = stage.bar.position();
        let length = stage.bar.length().unwrap_or(position);
        if stage.terminal {
            stage.bar.set_message(message());
        } else if position.is_multiple_of(stage.every) || position == length {
            let job = match stage.job.length() {
                Some(total) if total > 0 => format!(
                    "; job {}% eta {}",
                    stage.job.position() * 100 / total,
                    duration(stage.job.eta())
                ),
                _ => String::new(),
            };
            eprintln!(
                "[{}] step {position}/{length} eta {} {}{job}",
                stage.name,
                duration(stage.bar.eta()),
                message()
            );
        }
    }
}

impl Drop for StageProgress {
    fn drop(&mut self) {
        if let Some(stage) = &self.bar {
            stage.bar.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_format_durations_for_humans() {
        assert_eq!(duration(Duration::from_secs(12)), "12s");
        assert_eq!(duration(Duration::from_secs(245)), "4m05s");
        assert_eq!(duration(Duration::from_secs(3720)), "1h02m");
    }

    #[test]
    fn should_count_steps_of_stages_into_the_job() {
        let progress = Progress::stderr();
        progress.set_job(10, 2);
        {
            let stage = progress.stage("stage0-standalone", 4, 1);
            for _ in 0..3 {
                stage.step(|| "loss 1.0".into());
            }
        }
        let inner = progress.inner.as_ref().unwrap();
        // 2 done before, 1 done in the resumed stage, 3 now.
        assert_eq!(inner.job.position(), 6);
        assert_eq!(inner.job.length(), Some(10));
        assert!(Progress::quiet().is_quiet());
        Progress::quiet()
            .stage("quiet", 3, 0)
            .step(|| unreachable!());
    }
}
