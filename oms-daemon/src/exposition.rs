//! The two Prometheus exposition formats of `GET /metrics`, chosen by the
//! scraper's `Accept` header.
//!
//! prometheus-client renders OpenMetrics 1.0 text. Prometheus asks for it
//! first, but many scrapers and tools (older Prometheus set to the classic
//! protocol, `promtool check metrics`, Telegraf, curl) read the classic text
//! format 0.0.4, which differs in ways a classic parser trips over: a
//! counter family is named without `_total` while its samples carry it, and
//! `# EOF`, `# UNIT`, `_created` samples, exemplars and `unknown`/`info`
//! types do not exist there. [`to_classic`] rewrites the rendered text
//! family by family; it only depends on the format, so metrics added to
//! `metrics.rs` need nothing here.

/// The OpenMetrics content type.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The classic text format's content type.
pub const CLASSIC: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Which exposition format to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    Classic,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS,
            Format::Classic => CLASSIC,
        }
    }
}

/// OpenMetrics when the `Accept` header names `application/openmetrics-text`
/// with a weight at least that of any range covering `text/plain`
/// (`text/plain`, `text/*`, `*/*`); the classic format otherwise, including
/// with no header, `*/*` alone, or nothing acceptable (a scraper that can
/// read nothing we have is best served the most widely read format rather
/// than a 406).
pub fn negotiate(accept: Option<&str>) -> Format {
    let Some(accept) = accept else {
        return Format::Classic;
    };
    let mut openmetrics = 0.0_f32;
    let mut text = 0.0_f32;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let mut q = 1.0_f32;
        for param in parts {
            if let Some((name, value)) = param.split_once('=')
                && name.trim().eq_ignore_ascii_case("q")
            {
                // A malformed weight makes the range unusable (RFC 9110
                // allows 0 to 1 with up to three decimals).
                q = value
                    .trim()
                    .parse::<f32>()
                    .ok()
                    .filter(|q| (0.0..=1.0).contains(q))
                    .unwrap_or(0.0);
            }
        }
        match media.as_str() {
            "application/openmetrics-text" => openmetrics = openmetrics.max(q),
            "text/plain" | "text/*" | "*/*" => text = text.max(q),
            _ => {}
        }
    }
    if openmetrics > 0.0 && openmetrics >= text {
        Format::OpenMetrics
    } else {
        Format::Classic
    }
}

/// One metric family of the OpenMetrics text: its metadata and samples.
struct Family<'a> {
    name: &'a str,
    help: Option<&'a str>,
    kind: &'a str,
    samples: Vec<&'a str>,
}

/// Rewrites OpenMetrics text as the classic text format 0.0.4.
pub fn to_classic(openmetrics: &str) -> String {
    let mut families: Vec<Family<'_>> = Vec::new();
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            family(&mut families, name).help = Some(help);
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            family(&mut families, name).kind = kind.trim();
        } else if line.starts_with('#') || line.trim().is_empty() {
            // `# UNIT` (the unit is already part of the name), `# EOF`.
        } else if let Some(last) = families.last_mut() {
            last.samples.push(line);
        } else {
            // A sample before any metadata: untyped.
            families.push(Family {
                name: sample_name(line),
                help: None,
                kind: "unknown",
                samples: vec![line],
            });
        }
    }

    let mut out = String::with_capacity(openmetrics.len());
    for f in &families {
        let (name, kind) = match f.kind {
            // OpenMetrics names the family without the suffix its samples
            // carry; classic parsers match the TYPE line to sample names.
            "counter" => (format!("{}_total", f.name), "counter"),
            "info" => (format!("{}_info", f.name), "gauge"),
            "gauge" | "histogram" | "summary" => (f.name.to_string(), f.kind),
            "stateset" => (f.name.to_string(), "gauge"),
            _ => (f.name.to_string(), "untyped"),
        };
        if let Some(help) = f.help {
            out.push_str(&format!("# HELP {name} {help}\n"));
        }
        out.push_str(&format!("# TYPE {name} {kind}\n"));
        for sample in &f.samples {
            let created = format!("{}_created", f.name);
            if sample_name(sample) == created {
                continue;
            }
            out.push_str(&classic_sample(sample));
            out.push('\n');
        }
    }
    out
}

/// The family called `name`: the last one if it has that name and no
/// samples yet (HELP, TYPE and UNIT lines of one family), a new one otherwise.
fn family<'f, 'a>(families: &'f mut Vec<Family<'a>>, name: &'a str) -> &'f mut Family<'a> {
    let reuse = families
        .last()
        .is_some_and(|f| f.name == name && f.samples.is_empty());
    if !reuse {
        families.push(Family {
            name,
            help: None,
            kind: "unknown",
            samples: Vec::new(),
        });
    }
    let last = families.len() - 1;
    &mut families[last]
}

/// The metric name at the start of a sample line.
fn sample_name(line: &str) -> &str {
    let end = line.find(['{', ' ']).unwrap_or(line.len());
    &line[..end]
}

/// A sample line without its exemplar, with its timestamp (if any) turned
/// from OpenMetrics seconds into classic milliseconds.
fn classic_sample(line: &str) -> String {
    // Past the name and the label set; label values may hold spaces, `#`,
    // `}` and escaped quotes.
    let mut in_labels = false;
    let mut in_quotes = false;
    let mut escaped = false;
    let mut series_end = line.len();
    for (i, c) in line.char_indices() {
        if in_quotes {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_quotes = false,
                _ => {}
            }
            continue;
        }
        match c {
            '{' => in_labels = true,
            '"' if in_labels => in_quotes = true,
            '}' if in_labels => in_labels = false,
            ' ' if !in_labels => {
                series_end = i;
                break;
            }
            _ => {}
        }
    }
    let (series, rest) = line.split_at(series_end);
    let rest = rest.split(" # ").next().unwrap_or("");
    let mut fields = rest.split_whitespace();
    let value = fields.next().unwrap_or("");
    match fields.next().and_then(|t| t.parse::<f64>().ok()) {
        Some(seconds) => format!("{series} {value} {}", (seconds * 1000.0).round() as i64),
        None => format!("{series} {value}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_follows_the_weights_of_the_accept_header() {
        use Format::{Classic, OpenMetrics};
        let prometheus = "application/openmetrics-text;version=1.0.0,\
            application/openmetrics-text;version=0.0.1;q=0.75,\
            text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        for (accept, expected) in [
            (None, Classic),
            (Some(""), Classic),
            (Some("*/*"), Classic),
            (Some("text/plain"), Classic),
            (Some("text/plain;version=0.0.4"), Classic),
            (Some(prometheus), OpenMetrics),
            (Some("application/openmetrics-text"), OpenMetrics),
            (
                Some("Application/OpenMetrics-Text; version=1.0.0"),
                OpenMetrics,
            ),
            (
                Some("application/openmetrics-text;q=0.5, text/plain"),
                Classic,
            ),
            (
                Some("text/plain;q=0.2, application/openmetrics-text;q=0.9"),
                OpenMetrics,
            ),
            (Some("application/openmetrics-text;q=0"), Classic),
            (Some("application/openmetrics-text;q=2"), Classic),
            (Some("application/json"), Classic),
        ] {
            assert_eq!(negotiate(accept), expected, "{accept:?}");
        }
    }

    #[test]
    fn classic_names_counters_by_their_samples_and_drops_openmetrics_only_lines() {
        let om = "# HELP oms_requests Requests.\n\
                  # TYPE oms_requests counter\n\
                  oms_requests_total{route=\"/a b\",x=\"q\\\"} # 1\"} 3 # {trace_id=\"x\"} 1.0 1.5\n\
                  oms_requests_created 1700000000.5\n\
                  # HELP oms_build Build.\n\
                  # TYPE oms_build info\n\
                  oms_build_info{version=\"1\"} 1\n\
                  # HELP oms_age_seconds Age.\n\
                  # TYPE oms_age_seconds gauge\n\
                  # UNIT oms_age_seconds seconds\n\
                  oms_age_seconds 2.5 1700000000.25\n\
                  # HELP oms_mystery Something.\n\
                  # TYPE oms_mystery unknown\n\
                  oms_mystery 7\n\
                  # EOF\n";
        let classic = to_classic(om);
        assert_eq!(
            classic,
            "# HELP oms_requests_total Requests.\n\
             # TYPE oms_requests_total counter\n\
             oms_requests_total{route=\"/a b\",x=\"q\\\"} # 1\"} 3\n\
             # HELP oms_build_info Build.\n\
             # TYPE oms_build_info gauge\n\
             oms_build_info{version=\"1\"} 1\n\
             # HELP oms_age_seconds Age.\n\
             # TYPE oms_age_seconds gauge\n\
             oms_age_seconds 2.5 1700000000250\n\
             # HELP oms_mystery Something.\n\
             # TYPE oms_mystery untyped\n\
             oms_mystery 7\n"
        );
    }

    #[test]
    fn histograms_keep_their_samples() {
        let om = "# HELP h Latency.\n# TYPE h histogram\n\
                  h_sum 1.5\nh_count 2\nh_bucket{le=\"0.5\"} 1\nh_bucket{le=\"+Inf\"} 2\n# EOF\n";
        assert_eq!(
            to_classic(om),
            "# HELP h Latency.\n# TYPE h histogram\n\
             h_sum 1.5\nh_count 2\nh_bucket{le=\"0.5\"} 1\nh_bucket{le=\"+Inf\"} 2\n"
        );
    }
}
