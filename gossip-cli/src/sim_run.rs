//! `gossip sim run FILE.toml`: a scripted scenario (see `gossip_sim::script` for the file
//! format and `examples/` for samples). Prints each check's result; exits 1 if one failed.

use std::path::Path;
use std::time::Instant;

use gossip_sim::script::{Script, ScriptResult};

use crate::plot::{self, Chart, Line};

/// Reads, runs and reports the script at `path`.
/// `seed` and `runs` replace the file's own.
pub fn run(
    path: Option<&Path>,
    seed: Option<u64>,
    runs: Option<usize>,
    json: bool,
    plot_to: Option<&Path>,
) -> Result<(), String> {
    let path = path.ok_or("`gossip sim run` needs a scenario file: gossip sim run FILE.toml")?;
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let script = Script::from_toml(&text)
        .and_then(|s| s.with_runs(seed, runs))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let wall = Instant::now();
    let bar = crate::sim::progress(script.runs(), json);
    let result = script.run(|done| bar.set_position(done as u64));
    bar.finish_and_clear();
    let wall_s = wall.elapsed().as_secs_f64();
    if json {
        let mut value = serde_json::to_value(&result).map_err(|e| e.to_string())?;
        if let Some(fields) = value.as_object_mut() {
            fields.insert("file".into(), path.display().to_string().into());
            fields.insert("wall_s".into(), wall_s.into());
        }
        out!("{}", serde_json::to_string(&value).map_err(|e| e.to_string())?);
    } else {
        out!("{}", table(path, &result, wall_s));
    }
    // After the result, so a chart that cannot be written does not hide it.
    if let Some(to) = plot_to {
        plot::write(to, &chart(path, &result)).map_err(|e| format!("cannot write {}: {e}", to.display()))?;
    }
    if !result.passed {
        // Checks that fail are the answer, not an error of the command: exit 1, not 2.
        std::process::exit(1);
    }
    Ok(())
}

fn table(path: &Path, r: &ScriptResult, wall_s: f64) -> String {
    let runs = if r.runs == 1 { "1 run".to_owned() } else { format!("{} runs", r.runs) };
    let mut lines = vec![format!(
        "{}: {} nodes, seed {}, {runs} of {:.0} virtual s ({wall_s:.1} s wall)",
        path.display(),
        r.nodes,
        r.seed,
        r.duration_s
    )];
    if let Some(d) = &r.description {
        lines.push(d.clone());
    }
    lines.push(String::new());
    let width = r.checks.iter().map(|c| c.check.len()).max().unwrap_or(0).max(5);
    lines.push(format!("{:>7}  {:<width$}  {:<6}  detail", "at (s)", "check", "result"));
    for c in &r.checks {
        let result = match (c.passed, r.runs) {
            (true, _) => "pass".to_owned(),
            (false, 1) => "FAIL".to_owned(),
            (false, n) => format!("FAIL {}/{n}", c.runs_passed),
        };
        lines.push(format!("{:>7.1}  {:<width$}  {:<6}  {}", c.at_s, c.check, result, c.detail));
    }
    lines.push(String::new());
    lines.push(if r.passed {
        format!("all {} checks passed; {} live members declared dead", r.checks.len(), r.false_dead)
    } else {
        format!("{} of {} checks FAILED; {} live members declared dead", r.checks_failed, r.checks.len(), r.false_dead)
    });
    lines.join("\n")
}

fn chart(path: &Path, r: &ScriptResult) -> Chart {
    let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
    let series = |f: fn(&gossip_sim::script::Sample) -> f64| r.curve.iter().map(|s| (s.0, f(s))).collect();
    Chart::Lines {
        title: format!("{name}: {} nodes, seed {} (first run)", r.nodes, r.seed),
        x_label: "virtual seconds".into(),
        y_label: "members".into(),
        lines: vec![
            Line { name: "running".into(), points: series(|s| s.1) },
            Line { name: "seen per node (mean)".into(), points: series(|s| s.2) },
            Line { name: "seen per node (min)".into(), points: series(|s| s.3) },
        ],
    }
}
