//! Shell-style patterns for `--export` and `--import`: `*` matches any run of characters but
//! `/`, `?` one character but `/`; everything else matches itself.

/// Whether `text` matches the pattern `glob`.
pub fn matches(glob: &str, text: &str) -> bool {
    let (g, t): (Vec<char>, Vec<char>) = (glob.chars().collect(), text.chars().collect());
    // Iterative matching with one backtrack point (the last `*`): linear in practice, and
    // never recursive, whatever the pattern.
    let (mut gi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match g.get(gi) {
            Some('*') => {
                star = Some((gi, ti));
                gi += 1;
            }
            Some('?') if t[ti] != '/' => {
                gi += 1;
                ti += 1;
            }
            Some(&c) if c != '*' && c != '?' && c == t[ti] => {
                gi += 1;
                ti += 1;
            }
            _ => match star {
                // Let the last `*` take one more character, unless that is a `/`.
                Some((sg, st)) if t[st] != '/' => {
                    star = Some((sg, st + 1));
                    gi = sg + 1;
                    ti = st + 1;
                }
                _ => return false,
            },
        }
    }
    g[gi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn stars_and_question_marks() {
        assert!(matches("/robot-*", "/robot-pose"));
        assert!(matches("/robot-*", "/robot-"));
        assert!(!matches("/robot-*", "/robo"));
        assert!(matches("a/robot-*", "a/robot-pose"));
        assert!(!matches("a/robot-*", "b/robot-pose"));
        assert!(matches("*/robot-*", "b/robot-pose"));
        assert!(!matches("*", "a/robot-pose"));
        assert!(matches("/r?bot", "/robot"));
        assert!(matches("/*-pose", "/robot-pose"));
        assert!(!matches("*-pose", "/robot-pose"));
        assert!(!matches("/x", "/xy"));
        assert!(matches("/**", "/anything"));
    }
}
