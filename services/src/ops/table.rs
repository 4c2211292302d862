//! Aligned text tables, as the admin tools (`status`, `dead ls`, `device
//! ls`) print them.

use std::fmt::Write as _;

/// Appends `header` and `rows` to `out` as columns two spaces apart,
/// trailing spaces trimmed. With `width`, the last column is cut (with `…`)
/// so that a line fits it, but never below 20 characters.
pub fn table(out: &mut String, header: &[&str], rows: &[Vec<String>], width: Option<usize>) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let used: usize = widths[..widths.len().saturating_sub(1)]
        .iter()
        .map(|w| w + 2)
        .sum();
    let last = width.map(|w| w.saturating_sub(used).max(20));
    let mut line = |cells: &[String]| {
        let mut l = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(&last.map_or_else(|| cell.clone(), |w| truncate(cell, w)));
            } else {
                let _ = write!(l, "{cell:<w$}  ", w = widths[i]);
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&header.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    for row in rows {
        line(row);
    }
}

/// `text` cut to `width` characters, the last one `…` when it was cut.
pub fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_the_last_is_cut_to_fit() {
        let rows = vec![
            vec!["a".to_string(), "x".repeat(30)],
            vec!["bbbb".to_string(), "short".to_string()],
        ];
        let mut out = String::new();
        table(&mut out, &["K", "V"], &rows, None);
        assert_eq!(
            out,
            format!("K     V\na     {}\nbbbb  short\n", "x".repeat(30))
        );
        let mut cut = String::new();
        table(&mut cut, &["K", "V"], &rows, Some(26));
        assert_eq!(
            cut.lines().nth(1).unwrap(),
            format!("a     {}…", "x".repeat(19))
        );
    }
}
