//! What the command-line tool shows while training: a tqdm-like bar per epoch (steps, elapsed,
//! remaining, rate, running losses) and a line per finished epoch, drawn from the events the
//! library reports.

use gan_lib::classifier::ClassifierEvent;
use gan_lib::train::Event;
use indicatif::{ProgressBar, ProgressStyle};

/// The progress display of one training run; shows nothing when not `visible`.
pub(crate) struct Progress {
    visible: bool,
    bar: Option<ProgressBar>,
}

impl Progress {
    pub(crate) fn new(visible: bool) -> Progress {
        Progress { visible, bar: None }
    }

    /// Shows one event of a GAN's training.
    pub(crate) fn show(&mut self, event: &Event) {
        // A warning shows even when quiet.
        if let Event::NoMovie(why) = event {
            eprintln!("warning: no training movie: {why}");
        }
        if !self.visible {
            return;
        }
        match event {
            Event::Step {
                epoch,
                epochs,
                done,
                steps,
                mean: m,
            } => {
                let bar = self.bar(*epoch, *epochs, *steps);
                bar.set_message(format!(
                    "D {:.3}  G {:.3}  D(x) {:.2}  D(G(z)) {:.2}",
                    m.d_loss, m.g_loss, m.d_real, m.d_fake
                ));
                bar.set_position(*done as u64);
            }
            Event::Epoch { report, epochs } => {
                self.finish_bar();
                let m = report.mean;
                println!(
                    "epoch {:>3}/{}  D loss {:.4}  G loss {:.4}  D(x) {:.3}  D(G(z)) {:.3}  {:.1}s  {:.0} img/s",
                    report.epoch, epochs, m.d_loss, m.g_loss, m.d_real, m.d_fake, report.seconds, report.images_per_second
                );
            }
            Event::BudgetReached {
                budget,
                epoch,
                epochs,
                trained,
                last_epoch,
            } => println!(
                "Time budget of {:.1} min: stopping after epoch {epoch} of {epochs} ({:.1} min trained; one more epoch takes about {:.0} s)",
                budget.as_secs_f64() / 60.0,
                trained.as_secs_f64() / 60.0,
                last_epoch.as_secs_f64()
            ),
            Event::Movie(path) => println!("Training movie: {}", path.display()),
            Event::NoMovie(_) => {}
        }
    }

    /// Shows one event of the classifier's training.
    pub(crate) fn show_classifier(&mut self, event: &ClassifierEvent) {
        if !self.visible {
            return;
        }
        match event {
            ClassifierEvent::Step {
                epoch,
                epochs,
                done,
                steps,
                loss,
            } => {
                let bar = self.bar(*epoch, *epochs, *steps);
                if done % 50 == 0 {
                    bar.set_message(format!("loss {loss:.4}"));
                }
                bar.set_position(*done as u64);
            }
            ClassifierEvent::Epoch {
                epoch,
                epochs,
                evaluation,
                seconds,
            } => {
                self.finish_bar();
                println!(
                    "epoch {epoch}/{epochs}: test accuracy {:.2}%  ({seconds:.1}s)",
                    100.0 * evaluation.accuracy
                );
            }
        }
    }

    /// The bar of `epoch`, made at its first step.
    fn bar(&mut self, epoch: usize, epochs: usize, steps: usize) -> &ProgressBar {
        self.bar.get_or_insert_with(|| {
            let bar = ProgressBar::new(steps as u64);
            let style = ProgressStyle::with_template(
                "epoch {prefix} {bar:30.cyan/blue} {pos}/{len} [{elapsed_precise}<{eta_precise}, {per_sec}] {msg}",
            )
            .expect("valid template");
            bar.set_style(style);
            bar.set_prefix(format!("{epoch}/{epochs}"));
            bar
        })
    }

    fn finish_bar(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
