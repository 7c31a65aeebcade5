//! Live progress of a local run: bars on a terminal, plain lines elsewhere.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::layer::LayerPlan;
use crate::plan::Phase;
use crate::plan::describe::human_duration;
use crate::results::TestCounts;

/// What a local run reports as it goes. Called from several tasks.
pub trait Progress: Send + Sync {
    /// A suite of `layers` layers and `categories` categories in all begins.
    fn suite_started(&self, _layers: usize, _categories: usize) {}
    /// The layer begins.
    fn layer_started(&self, _layer: &LayerPlan) {}
    /// An attempt started.
    fn attempt_started(&self, _category: usize, _name: &str, _attempt: u32) {}
    /// A line of a running attempt's output.
    fn output(&self, _category: usize, _line: &str) {}
    /// An attempt ended and will be retried.
    fn attempt_retried(&self, _category: usize, _name: &str, _attempt: u32, _why: &str) {}
    /// A category ended.
    fn category_finished(
        &self,
        _category: usize,
        _name: &str,
        _phase: Phase,
        _message: &str,
        _counts: Option<TestCounts>,
        _took: Duration,
    ) {
    }
    /// Something worth a line (waiting for services, cancelling).
    fn note(&self, _text: &str) {}
    /// The layer ended; clear whatever is on screen.
    fn finished(&self) {}
}

/// Reports nothing.
#[derive(Debug, Default)]
pub struct Silent;
impl Progress for Silent {}

fn counts_text(c: Option<TestCounts>) -> String {
    match c {
        Some(c) => format!(
            " — {} passed, {} failed, {} skipped",
            c.passed, c.failed, c.skipped
        ),
        None => String::new(),
    }
}

fn symbol(p: Phase) -> &'static str {
    match p {
        Phase::Succeeded => "✔",
        Phase::Skipped | Phase::Cancelled => "○",
        _ => "✘",
    }
}

/// Plain timestamped lines on stderr, for logs and CI; with `echo_output`, every
/// output line too, prefixed with its category.
pub struct PlainProgress {
    start: Instant,
    echo_output: bool,
    names: Mutex<HashMap<usize, String>>,
}

impl PlainProgress {
    /// Lines on stderr, timed from now.
    pub fn new(echo_output: bool) -> Self {
        PlainProgress {
            start: Instant::now(),
            echo_output,
            names: Mutex::new(HashMap::new()),
        }
    }

    fn line(&self, text: &str) {
        let t = self.start.elapsed().as_secs_f64();
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "[{t:>7.2}s] {text}");
    }
}

impl Progress for PlainProgress {
    fn suite_started(&self, layers: usize, categories: usize) {
        self.line(&format!("suite: {layers} layers, {categories} categories"));
    }
    fn layer_started(&self, l: &LayerPlan) {
        self.line(&format!(
            "layer {} ({}): {} categories, strategy {}{}",
            l.settings.display_name,
            l.settings.key,
            l.categories.len(),
            l.settings.strategy.as_str(),
            l.effective_parallelism()
                .map(|p| format!(", at most {p} at once"))
                .unwrap_or_default()
        ));
    }
    fn attempt_started(&self, i: usize, name: &str, attempt: u32) {
        if let Ok(mut n) = self.names.lock() {
            n.insert(i, name.to_string());
        }
        if attempt > 1 {
            self.line(&format!("{name}: started (attempt {attempt})"));
        } else {
            self.line(&format!("{name}: started"));
        }
    }
    fn output(&self, i: usize, line: &str) {
        if self.echo_output {
            let name = self
                .names
                .lock()
                .ok()
                .and_then(|n| n.get(&i).cloned())
                .unwrap_or_default();
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "  {name} | {line}");
        }
    }
    fn attempt_retried(&self, _i: usize, name: &str, attempt: u32, why: &str) {
        self.line(&format!("{name}: attempt {attempt} {why}; retrying"));
    }
    fn category_finished(
        &self,
        _i: usize,
        name: &str,
        phase: Phase,
        message: &str,
        counts: Option<TestCounts>,
        took: Duration,
    ) {
        let why = if phase == Phase::Succeeded {
            String::new()
        } else {
            format!(": {message}")
        };
        self.line(&format!(
            "{} {name}: {phase} in {}{why}{}",
            symbol(phase),
            human_duration(took),
            counts_text(counts)
        ));
    }
    fn note(&self, text: &str) {
        self.line(text);
    }
}

/// A spinner per running category and an overall bar, on a terminal.
pub struct TerminalProgress {
    multi: MultiProgress,
    overall: ProgressBar,
    bars: Mutex<HashMap<usize, ProgressBar>>,
}

impl TerminalProgress {
    /// Draws on stderr.
    pub fn new() -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let overall = multi.add(ProgressBar::new(0));
        overall.set_style(
            ProgressStyle::with_template(
                "{prefix:.bold} [{bar:30.cyan/blue}] {pos}/{len} categories done  {elapsed}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        TerminalProgress {
            multi,
            overall,
            bars: Mutex::new(HashMap::new()),
        }
    }
}

impl Default for TerminalProgress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for TerminalProgress {
    fn suite_started(&self, layers: usize, categories: usize) {
        self.overall.set_length(categories as u64);
        self.overall.set_prefix(format!("suite of {layers} layers"));
        self.overall.enable_steady_tick(Duration::from_millis(200));
    }
    fn layer_started(&self, l: &LayerPlan) {
        self.overall.set_length(l.categories.len() as u64);
        self.overall.set_prefix(l.settings.display_name.clone());
        self.overall.enable_steady_tick(Duration::from_millis(200));
    }
    fn attempt_started(&self, i: usize, name: &str, attempt: u32) {
        let bar = self
            .multi
            .insert_before(&self.overall, ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template(
                "  {spinner:.green} {prefix:24!} {elapsed:>4} {wide_msg:.dim}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(if attempt > 1 {
            format!("{name} (#{attempt})")
        } else {
            name.to_string()
        });
        bar.enable_steady_tick(Duration::from_millis(120));
        if let Ok(mut b) = self.bars.lock()
            && let Some(old) = b.insert(i, bar)
        {
            old.finish_and_clear();
        }
    }
    fn output(&self, i: usize, line: &str) {
        if let Ok(b) = self.bars.lock()
            && let Some(bar) = b.get(&i)
        {
            bar.set_message(line.trim().to_string());
        }
    }
    fn attempt_retried(&self, i: usize, name: &str, attempt: u32, why: &str) {
        if let Ok(mut b) = self.bars.lock()
            && let Some(bar) = b.remove(&i)
        {
            bar.finish_and_clear();
        }
        let _ = self
            .multi
            .println(format!("  ↻ {name}: attempt {attempt} {why}; retrying"));
    }
    fn category_finished(
        &self,
        i: usize,
        name: &str,
        phase: Phase,
        message: &str,
        counts: Option<TestCounts>,
        took: Duration,
    ) {
        if let Ok(mut b) = self.bars.lock()
            && let Some(bar) = b.remove(&i)
        {
            bar.finish_and_clear();
        }
        let why = if phase == Phase::Succeeded {
            String::new()
        } else {
            format!(": {message}")
        };
        let _ = self.multi.println(format!(
            "  {} {name}: {phase} in {}{why}{}",
            symbol(phase),
            human_duration(took),
            counts_text(counts)
        ));
        self.overall.inc(1);
    }
    fn note(&self, text: &str) {
        let _ = self.multi.println(format!("  {text}"));
    }
    fn finished(&self) {
        if let Ok(mut b) = self.bars.lock() {
            for (_, bar) in b.drain() {
                bar.finish_and_clear();
            }
        }
        self.overall.finish_and_clear();
    }
}

/// The progress of one layer of a suite, told to the suite's own: category
/// names prefixed with the layer key, category numbers offset by `base` so
/// that the layers running at once never share one, the layer's start and
/// end as lines.
pub struct LayerPrefixed {
    inner: std::sync::Arc<dyn Progress>,
    key: String,
    base: usize,
}

impl LayerPrefixed {
    /// Layer `key`'s progress, its categories numbered from `base` in `inner`.
    pub fn new(inner: std::sync::Arc<dyn Progress>, key: &str, base: usize) -> Self {
        LayerPrefixed {
            inner,
            key: key.to_string(),
            base,
        }
    }

    fn name(&self, name: &str) -> String {
        format!("{}/{name}", self.key)
    }
}

impl Progress for LayerPrefixed {
    fn layer_started(&self, l: &LayerPlan) {
        self.inner.note(&format!(
            "layer {} ({}) started: {} categories, strategy {}",
            l.settings.display_name,
            l.settings.key,
            l.categories.len(),
            l.settings.strategy.as_str()
        ));
    }
    fn attempt_started(&self, i: usize, name: &str, attempt: u32) {
        self.inner
            .attempt_started(self.base + i, &self.name(name), attempt);
    }
    fn output(&self, i: usize, line: &str) {
        self.inner.output(self.base + i, line);
    }
    fn attempt_retried(&self, i: usize, name: &str, attempt: u32, why: &str) {
        self.inner
            .attempt_retried(self.base + i, &self.name(name), attempt, why);
    }
    fn category_finished(
        &self,
        i: usize,
        name: &str,
        phase: Phase,
        message: &str,
        counts: Option<TestCounts>,
        took: Duration,
    ) {
        self.inner.category_finished(
            self.base + i,
            &self.name(name),
            phase,
            message,
            counts,
            took,
        );
    }
    fn note(&self, text: &str) {
        self.inner.note(&format!("{}: {text}", self.key));
    }
    /// The suite's own progress ends with the suite.
    fn finished(&self) {}
}
