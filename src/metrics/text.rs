//! Owns: the Prometheus text exposition format (version 0.0.4), written by
//! hand: `# HELP` and `# TYPE` once per family, then its samples; label
//! values and help text escaped; histograms as cumulative `_bucket{le=…}`,
//! `_sum` and `_count`. And the reverse, a small reader, so tests can check
//! what a scrape says.
//!
//! Why by hand: the format is one page and stable; the Rust client
//! `prometheus-client` writes only OpenMetrics (`# EOF`, counters declared
//! without `_total`), which `promtool check metrics` reads as a different
//! format, and its model (registered live metric objects) fits badly with
//! numbers read from a snapshot at scrape time.
//!
//! Must not: know what puente measures (collect.rs does).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::node::histogram::HistogramSnapshot;

/// The content type of a scrape.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A scrape being written.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

/// One family: its samples follow its `# HELP` and `# TYPE` lines.
pub struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl Exposition {
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// Starts a family. Counter names end in `_total`; units are base
    /// units (`_seconds`, `_bytes`).
    pub fn family(&mut self, name: &'static str, kind: Kind, help: &str) -> Family<'_> {
        debug_assert!(
            (kind == Kind::Counter) == name.ends_with("_total"),
            "{name}: counters, and only counters, end in _total"
        );
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.name());
        Family {
            out: &mut self.out,
            name,
        }
    }

    pub fn finish(self) -> String {
        self.out
    }
}

impl Family<'_> {
    /// One sample with these labels.
    pub fn sample(&mut self, labels: &[(&str, &str)], value: f64) -> &mut Self {
        write_sample(self.out, self.name, "", labels, None, value);
        self
    }

    /// The samples of one histogram with these labels.
    pub fn histogram(&mut self, labels: &[(&str, &str)], h: &HistogramSnapshot) -> &mut Self {
        for (bound, count) in &h.buckets {
            let le = number(*bound);
            write_sample(
                self.out,
                self.name,
                "_bucket",
                labels,
                Some(&le),
                *count as f64,
            );
        }
        write_sample(
            self.out,
            self.name,
            "_bucket",
            labels,
            Some("+Inf"),
            h.count as f64,
        );
        write_sample(self.out, self.name, "_sum", labels, None, h.sum_seconds);
        write_sample(self.out, self.name, "_count", labels, None, h.count as f64);
        self
    }
}

fn write_sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &[(&str, &str)],
    le: Option<&str>,
    value: f64,
) {
    out.push_str(name);
    out.push_str(suffix);
    if !labels.is_empty() || le.is_some() {
        out.push('{');
        let mut first = true;
        for (key, value) in labels.iter().copied().chain(le.map(|l| ("le", l))) {
            if !first {
                out.push(',');
            }
            first = false;
            let _ = write!(out, "{key}=\"{}\"", escape_label(value));
        }
        out.push('}');
    }
    out.push(' ');
    out.push_str(&number(value));
    out.push('\n');
}

/// A number as the format writes it: whole numbers without a fraction,
/// `+Inf`, `-Inf`, `NaN`.
pub fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

// ---- reading ------------------------------------------------------------

/// One sample of a scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A scrape read back: its samples, and each family's type.
#[derive(Debug, Default)]
pub struct Scrape {
    pub samples: Vec<Sample>,
    pub types: BTreeMap<String, String>,
}

impl Scrape {
    /// The value of the sample `name` whose labels include `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
    }
}

/// Reads a scrape in the text format; an error names the line.
pub fn parse(text: &str) -> Result<Scrape, String> {
    let mut scrape = Scrape::default();
    for (i, line) in text.lines().enumerate() {
        let bad = |why: &str| format!("line {}: {why}: {line}", i + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .ok_or_else(|| bad("a TYPE without a kind"))?;
            if scrape.types.insert(name.into(), kind.into()).is_some() {
                return Err(bad("a second TYPE for one family"));
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (name, rest) = match line.find(['{', ' ']) {
            Some(at) => line.split_at(at),
            None => return Err(bad("a sample without a value")),
        };
        let mut labels = BTreeMap::new();
        let rest = if let Some(mut r) = rest.strip_prefix('{') {
            loop {
                if let Some(after) = r.strip_prefix('}') {
                    break after;
                }
                let r2 = r.strip_prefix(',').unwrap_or(r);
                let (key, after) = r2
                    .split_once("=\"")
                    .ok_or_else(|| bad("a label without =\""))?;
                let mut value = String::new();
                let mut chars = after.char_indices();
                let end = loop {
                    match chars.next() {
                        Some((_, '\\')) => match chars.next() {
                            Some((_, 'n')) => value.push('\n'),
                            Some((_, c)) => value.push(c),
                            None => return Err(bad("a label value cut short")),
                        },
                        Some((at, '"')) => break at,
                        Some((_, c)) => value.push(c),
                        None => return Err(bad("a label value without its closing quote")),
                    }
                };
                labels.insert(key.to_string(), value);
                r = &after[end + 1..];
            }
        } else {
            rest
        };
        let value = rest.trim();
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v
                .parse::<f64>()
                .map_err(|_| bad("a value that is not a number"))?,
        };
        scrape.samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    Ok(scrape)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_labels_and_histograms_read_back() {
        let mut e = Exposition::new();
        e.family("demo_rows", Kind::Gauge, "Rows.\nPer table \\ all.")
            .sample(&[("table", "a\"b\\c\nd")], 3.0)
            .sample(&[("table", "plain")], 0.5);
        e.family("demo_events_total", Kind::Counter, "Events.")
            .sample(&[], 1e20);
        let h = crate::node::histogram::Histogram::default();
        h.observe(std::time::Duration::from_millis(3));
        e.family("demo_seconds", Kind::Histogram, "Durations.")
            .histogram(&[("peer", "x")], &h.snapshot());
        let text = e.finish();
        assert!(
            text.contains("# HELP demo_rows Rows.\\nPer table \\\\ all.\n"),
            "{text}"
        );
        assert!(text.contains("demo_rows{table=\"plain\"} 0.5\n"), "{text}");
        assert!(
            text.contains("demo_seconds_bucket{peer=\"x\",le=\"+Inf\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("demo_seconds_bucket{peer=\"x\",le=\"0.0025\"} 0\n"),
            "{text}"
        );
        let s = parse(&text).unwrap();
        assert_eq!(s.value("demo_rows", &[("table", "a\"b\\c\nd")]), Some(3.0));
        assert_eq!(s.value("demo_events_total", &[]), Some(1e20));
        assert_eq!(s.value("demo_seconds_count", &[("peer", "x")]), Some(1.0));
        assert_eq!(
            s.value("demo_seconds_bucket", &[("le", "0.005")]),
            Some(1.0)
        );
        assert_eq!(s.types["demo_seconds"], "histogram");
        assert!(parse("x{a=\"1} 2").is_err());
        assert!(parse("x 2 3 y").is_err());
    }

    #[test]
    fn numbers_are_written_as_the_format_wants() {
        assert_eq!(number(3.0), "3");
        assert_eq!(number(-2.0), "-2");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(number(f64::NAN), "NaN");
    }
}
