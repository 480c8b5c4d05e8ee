//! The gate's three renderings: terminal table, Markdown (CI job summary / PR comment) and JUnit
//! XML. All deterministic (no timestamps or durations), so reports of equal inputs are equal.

use super::{GateOutcome, GateRow, PathDiff, Verdict};
use std::fmt::Write;

/// Differences listed per file before "… and N more" (pair scores can differ in 30,000 places).
const MAX_LISTED: usize = 200;

fn num(x: Option<f64>) -> String {
    x.map_or_else(|| "-".into(), |x| format!("{x:.6}"))
}

fn signed(x: Option<f64>) -> String {
    x.map_or_else(|| "-".into(), |x| format!("{x:+.6}"))
}

fn interval(r: &GateRow) -> String {
    r.interval.map_or_else(|| "-".into(), |(lo, hi)| format!("[{lo:+.6}, {hi:+.6}]"))
}

fn summary(o: &GateOutcome) -> String {
    if o.exact {
        let n = o.differences.len();
        return match n {
            0 => "no value differs".into(),
            1 => "1 value differs".into(),
            _ => format!("{n} values differ"),
        };
    }
    format!(
        "{} regressed, {} improved, {} unchanged, {} skipped",
        o.count(Verdict::Regressed),
        o.count(Verdict::Improved),
        o.count(Verdict::Unchanged),
        o.count(Verdict::Skipped)
    )
}

fn mode(o: &GateOutcome) -> &'static str {
    if o.exact {
        " (exact)"
    } else {
        ""
    }
}

/// Differences of one file, at most `MAX_LISTED`, and how many were left out.
fn listed<'a>(o: &'a GateOutcome, file: &str) -> (Vec<&'a PathDiff>, usize) {
    let all: Vec<&PathDiff> = o.differences.iter().filter(|d| d.file == file).collect();
    let more = all.len().saturating_sub(MAX_LISTED);
    (all.into_iter().take(MAX_LISTED).collect(), more)
}

pub(super) fn table(o: &GateOutcome) -> String {
    let mut s = String::new();
    let verdict = if o.passed() { "PASSED" } else { "FAILED" };
    let _ = writeln!(s, "aifr-eval gate{}: {verdict} ({})", mode(o), summary(o));
    let _ = writeln!(s, "  current {}  vs  baseline {}", o.current, o.baseline);
    let pct = format!("{:.0}% CI of Δ", o.confidence * 100.0);
    let cells: Vec<[String; 7]> = o
        .rows
        .iter()
        .map(|r| {
            let v = if r.verdict.fails() { r.verdict.as_str().to_uppercase() } else { r.verdict.as_str().into() };
            if o.exact {
                [r.metric.clone(), v, r.note.clone(), String::new(), String::new(), String::new(), String::new()]
            } else {
                [r.metric.clone(), num(r.baseline), num(r.current), signed(r.diff), interval(r), num(r.tolerance), v]
            }
        })
        .collect();
    let header: [String; 7] = if o.exact {
        ["file", "verdict", "note", "", "", "", ""].map(String::from)
    } else {
        ["metric", "baseline", "current", "Δ", pct.as_str(), "tolerance", "verdict"].map(String::from)
    };
    let mut width = [0usize; 7];
    for row in std::iter::once(&header).chain(&cells) {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&cells) {
        let mut line = String::from(" ");
        for (w, c) in width.iter().zip(row) {
            let _ = write!(line, " {c:<w$}");
        }
        let _ = writeln!(s, "{}", line.trim_end());
    }
    if !o.exact {
        for r in o.rows.iter().filter(|r| !r.note.is_empty()) {
            let _ = writeln!(s, "  {}: {}", r.metric, r.note);
        }
    }
    for r in o.rows.iter().filter(|r| o.exact && r.verdict.fails()) {
        let (list, more) = listed(o, &r.metric);
        let _ = writeln!(s, "  {}:", r.metric);
        for d in list {
            let _ = writeln!(s, "    {}: {} → {}", d.path, d.baseline, d.current);
        }
        if more > 0 {
            let _ = writeln!(s, "    … and {more} more");
        }
    }
    for n in &o.notes {
        let _ = writeln!(s, "  note: {n}");
    }
    s
}

/// Markdown text: HTML-significant characters as entities, Markdown punctuation backslashed, one line.
fn md(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\n' | '\r' => out.push(' '),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '#' | '~' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// A code span in a table cell (paths and values read better verbatim); `|` must still be
/// escaped inside tables, and backticks cannot appear inside a single-backtick span.
fn code(text: &str) -> String {
    format!("`{}`", text.replace('`', "'").replace('|', "\\|").replace(['\n', '\r'], " "))
}

pub(super) fn markdown(o: &GateOutcome) -> String {
    let mut s = String::new();
    let (icon, word) = if o.passed() { ("✅", "passed") } else { ("❌", "failed") };
    let _ = writeln!(s, "## {icon} aifr-eval gate{} {word}\n", mode(o));
    let _ = writeln!(s, "Run {} against baseline {}: {}.\n", md(&o.current), md(&o.baseline), summary(o));
    let mark = |v: Verdict| match v {
        Verdict::Regressed => "❌ regressed",
        Verdict::Changed => "❌ changed",
        Verdict::Improved => "⬆️ improved",
        Verdict::Unchanged => "unchanged",
        Verdict::Skipped => "skipped",
    };
    if o.exact {
        let _ = writeln!(s, "| file | verdict | note |\n|---|---|---|");
        for r in &o.rows {
            let _ = writeln!(s, "| {} | {} | {} |", md(&r.metric), mark(r.verdict), md(&r.note));
        }
        if !o.differences.is_empty() {
            let _ = writeln!(s, "\n### Differences\n\n| path | baseline | current |\n|---|---|---|");
            for r in &o.rows {
                let (list, more) = listed(o, &r.metric);
                for d in list {
                    let _ = writeln!(s, "| {} | {} | {} |", code(&d.path), code(&d.baseline), code(&d.current));
                }
                if more > 0 {
                    let _ = writeln!(s, "| … and {more} more in {} | | |", md(&r.metric));
                }
            }
        }
    } else {
        let _ = writeln!(
            s,
            "| metric | baseline | current | Δ | {:.0}% CI of Δ | tolerance | verdict | note |",
            o.confidence * 100.0
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---|---:|---|---|");
        for r in &o.rows {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                md(&r.metric),
                num(r.baseline),
                num(r.current),
                signed(r.diff),
                interval(r),
                num(r.tolerance),
                mark(r.verdict),
                md(&r.note)
            );
        }
        let _ = writeln!(
            s,
            "\nΔ = current − baseline. Higher is better except for EER. A metric regresses when it is worse \
             by more than its tolerance and, where required, the paired bootstrap interval of Δ excludes 0."
        );
    }
    if !o.notes.is_empty() {
        let _ = writeln!(s, "\n**Notes**\n");
        for n in &o.notes {
            let _ = writeln!(s, "- {}", md(n));
        }
    }
    s
}

/// XML 1.0 text: the five special characters as entities; characters XML cannot carry at all
/// (most control characters, U+FFFE/U+FFFF) as U+FFFD. In attributes (`attr`), newlines and
/// tabs are character references, which attribute-value normalisation would otherwise flatten.
pub(crate) fn xml_escape(text: &str, attr: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' if attr => out.push_str("&#10;"),
            '\r' if attr => out.push_str("&#13;"),
            '\t' if attr => out.push_str("&#9;"),
            '\n' | '\r' | '\t' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

fn detail(o: &GateOutcome, r: &GateRow) -> String {
    if o.exact {
        let (list, more) = listed(o, &r.metric);
        if list.is_empty() {
            return r.note.clone();
        }
        let mut s: String = list.iter().map(|d| format!("{}: {} → {}\n", d.path, d.baseline, d.current)).collect();
        if more > 0 {
            let _ = writeln!(s, "… and {more} more");
        }
        return s;
    }
    format!(
        "baseline {}\ncurrent {}\ndiff {}\ninterval {}\ntolerance {}\n{}\n",
        num(r.baseline),
        num(r.current),
        signed(r.diff),
        interval(r),
        num(r.tolerance),
        r.note
    )
}

pub(super) fn junit_xml(o: &GateOutcome) -> String {
    let a = |t: &str| xml_escape(t, true);
    let failures = o.rows.iter().filter(|r| r.verdict.fails()).count();
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        s,
        "<testsuite name=\"aifr-eval gate\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{}\">",
        o.rows.len(),
        o.count(Verdict::Skipped)
    );
    let _ = writeln!(s, "  <properties>");
    let _ = writeln!(s, "    <property name=\"current\" value=\"{}\"/>", a(&o.current));
    let _ = writeln!(s, "    <property name=\"baseline\" value=\"{}\"/>", a(&o.baseline));
    let _ = writeln!(s, "    <property name=\"mode\" value=\"{}\"/>", if o.exact { "exact" } else { "statistical" });
    let _ = writeln!(s, "  </properties>");
    for r in &o.rows {
        let _ = write!(s, "  <testcase classname=\"aifr-eval gate\" name=\"{}\">", a(&r.metric));
        let message = if r.note.is_empty() {
            r.verdict.as_str().to_string()
        } else {
            format!("{}: {}", r.verdict.as_str(), r.note)
        };
        match r.verdict {
            Verdict::Regressed | Verdict::Changed => {
                let _ = write!(
                    s,
                    "\n    <failure message=\"{}\" type=\"{}\">{}</failure>\n  ",
                    a(&message),
                    r.verdict.as_str(),
                    xml_escape(&detail(o, r), false)
                );
            }
            Verdict::Skipped => {
                let _ = write!(s, "\n    <skipped message=\"{}\"/>\n  ", a(&r.note));
            }
            Verdict::Improved | Verdict::Unchanged => {
                let _ = write!(s, "\n    <system-out>{}</system-out>\n  ", xml_escape(&detail(o, r), false));
            }
        }
        let _ = writeln!(s, "</testcase>");
    }
    let _ = writeln!(s, "</testsuite>");
    s
}
