//! Text search that works beyond ASCII: both the searched text and the
//! search term are folded to one case before they are compared, so `ZOË`
//! finds "Zoë gadget", `ΣΟΦΙΑ` finds "Σοφία"'s lower-case spelling and
//! `ПЕТРОВ` finds "Петров". SQLite's `LIKE` folds only ASCII letters; the
//! store compares [`fold`]ed text (see `store::register_functions`).

/// The text in the one case search compares: Unicode lower case (Latin,
/// Greek, Cyrillic and every other cased script), with the Greek final
/// sigma `ς` read as `σ` (a word's last letter is `ς` in lower case and `Σ`
/// in upper case, so "ΟΔΥΣΣΕΥΣ" and "Οδυσσευς" must meet), and the German
/// `ß` as `ss` (its upper case is `SS`).
pub fn fold(text: &str) -> String {
    if text.is_ascii() {
        return text.to_ascii_lowercase();
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            'ς' => out.push('σ'),
            'ß' | 'ẞ' => out.push_str("ss"),
            c => out.extend(c.to_lowercase()),
        }
    }
    out
}

/// The `LIKE ... ESCAPE '\'` pattern that finds `text` anywhere in a
/// [`fold`]ed column: folded, with `%`, `_` and `\` escaped. Both storage
/// engines search this way (their `oms_fold` SQL function is [`fold`]).
pub(crate) fn like_pattern(text: &str) -> String {
    let text = fold(text);
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

#[cfg(test)]
mod tests {
    use super::fold;

    fn finds(term: &str, text: &str) -> bool {
        fold(text).contains(&fold(term))
    }

    #[test]
    fn folds_latin_greek_and_cyrillic_case() {
        assert!(finds("ZOË", "Zoë gadget"));
        assert!(finds("zoë", "ZOË GADGET"));
        assert!(finds("ÉCLAIR", "éclair au café"));
        assert!(finds("ΟΔΥΣΣΕΥΣ", "ο οδυσσευς"));
        assert!(finds("οδυσσευς", "ΟΔΥΣΣΕΥΣ"));
        assert!(finds("ΣΟΦΙΑ", "σοφια"));
        assert!(finds("ПЕТРОВ", "Иван Петров"));
        assert!(finds("ёлка", "ЁЛКА"));
        assert!(finds("STRASSE", "Hauptstraße 1"));
        assert!(finds("ŁÓDŹ", "łódź"));
        assert!(!finds("ZOE", "Zoë"), "case only, accents still count");
        assert_eq!(fold("Mixed ASCII"), "mixed ascii");
    }
}
