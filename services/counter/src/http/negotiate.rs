//! Content negotiation on `Accept`: plain text for `curl`, JSON on request, the
//! live page for browsers. Malformed ranges are ignored like any unknown type;
//! nothing acceptable at all is a 406.

/// What a count is rendered as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Html,
}

impl Format {
    fn media_type(self) -> (&'static str, &'static str) {
        match self {
            Format::Text => ("text", "plain"),
            Format::Json => ("application", "json"),
            Format::Html => ("text", "html"),
        }
    }
}

/// Picks the best of `offered` (in the server's order of preference) for the
/// `Accept` header; None when none is acceptable. A missing header accepts anything.
pub fn negotiate(accept: Option<&str>, offered: &[Format]) -> Option<Format> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return offered.first().copied();
    };
    let ranges: Vec<Range> = accept.split(',').filter_map(Range::parse).take(64).collect();
    let mut best: Option<(Format, u16, u8)> = None;
    for &format in offered {
        // The most specific matching range decides this format's quality.
        let Some((q, specificity)) =
            ranges.iter().filter_map(|r| r.matches(format).map(|s| (r.q, s))).max_by_key(|&(_, s)| s)
        else {
            continue;
        };
        if q == 0 {
            continue;
        }
        if best.is_none_or(|(_, bq, bs)| (q, specificity) > (bq, bs)) {
            best = Some((format, q, specificity));
        }
    }
    best.map(|(format, _, _)| format)
}

struct Range<'a> {
    kind: &'a str,
    subtype: &'a str,
    /// Quality in thousandths, 0..=1000.
    q: u16,
}

impl<'a> Range<'a> {
    fn parse(item: &'a str) -> Option<Range<'a>> {
        let mut parts = item.split(';');
        let (kind, subtype) = parts.next()?.trim().split_once('/')?;
        let (kind, subtype) = (kind.trim(), subtype.trim());
        if kind.is_empty() || subtype.is_empty() || (kind == "*" && subtype != "*") {
            return None;
        }
        let mut q = 1000;
        for param in parts {
            if let Some((name, value)) = param.split_once('=')
                && name.trim().eq_ignore_ascii_case("q")
            {
                q = parse_q(value.trim())?;
            }
        }
        Some(Range { kind, subtype, q })
    }

    /// How specifically this range matches the format: 2 exact, 1 `type/*`, 0 `*/*`.
    fn matches(&self, format: Format) -> Option<u8> {
        let (kind, subtype) = format.media_type();
        match (self.kind, self.subtype) {
            ("*", "*") => Some(0),
            (k, "*") if k.eq_ignore_ascii_case(kind) => Some(1),
            (k, s) if k.eq_ignore_ascii_case(kind) && s.eq_ignore_ascii_case(subtype) => Some(2),
            _ => None,
        }
    }
}

fn parse_q(raw: &str) -> Option<u16> {
    let value: f32 = raw.parse().ok()?;
    (0.0..=1.0).contains(&value).then(|| (value * 1000.0).round() as u16)
}

#[cfg(test)]
mod tests {
    use super::Format::*;
    use super::*;

    const PAGE: &[Format] = &[Text, Json, Html];

    #[test]
    fn curl_gets_text() {
        assert_eq!(negotiate(None, PAGE), Some(Text));
        assert_eq!(negotiate(Some("*/*"), PAGE), Some(Text));
    }

    #[test]
    fn json_when_asked() {
        assert_eq!(negotiate(Some("application/json"), PAGE), Some(Json));
        assert_eq!(negotiate(Some("text/plain;q=0.5, application/json"), PAGE), Some(Json));
    }

    #[test]
    fn browsers_get_the_page() {
        let chrome = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8";
        assert_eq!(negotiate(Some(chrome), PAGE), Some(Html));
        assert_eq!(negotiate(Some(chrome), &[Text, Json]), Some(Text), "no page offered: */* gives text");
    }

    #[test]
    fn unacceptable_or_garbage_is_none() {
        assert_eq!(negotiate(Some("image/png"), PAGE), None);
        assert_eq!(negotiate(Some("garbage"), PAGE), None);
        assert_eq!(negotiate(Some("text/plain;q=0, application/json;q=0"), &[Text, Json]), None);
        assert_eq!(negotiate(Some("*/plain, text/html;q=2"), PAGE), None);
    }
}
