//! `README.zh-CN.md` translates the prose of `README.md` and nothing else:
//! every fenced code block (commands, output samples, code) must be the same,
//! byte for byte and in the same order, so the translation cannot drift from
//! the commands it describes. The same holds for `docs/tutorial.zh-CN.md`
//! and `docs/tutorial.md`, whose commands `tests/tutorial.rs` runs.

use std::fs;
use std::path::Path;

/// The fenced code blocks of a Markdown text, each with its opening fence
/// line (the info string) and its body, split on lines starting with three
/// backticks.
fn code_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.split_inclusive('\n') {
        if line.starts_with("```") {
            match current.take() {
                None => current = Some(line.to_string()),
                Some(mut block) => {
                    block.push_str(line);
                    blocks.push(block);
                }
            }
        } else if let Some(block) = current.as_mut() {
            block.push_str(line);
        }
    }
    assert!(current.is_none(), "an unclosed code block");
    blocks
}

fn read(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Fails unless the fenced code blocks of `chinese` are those of `english`,
/// byte for byte and in the same order.
fn assert_same_code_blocks(english: &str, chinese: &str) {
    let english_blocks = code_blocks(&read(english));
    let chinese_blocks = code_blocks(&read(chinese));
    assert!(!english_blocks.is_empty(), "{english} has no code blocks");
    for (i, (en, zh)) in english_blocks.iter().zip(&chinese_blocks).enumerate() {
        assert_eq!(
            zh,
            en,
            "code block {} of {chinese} differs from {english}'s",
            i + 1
        );
    }
    assert_eq!(
        chinese_blocks.len(),
        english_blocks.len(),
        "{chinese} has {} code blocks, {english} {}",
        chinese_blocks.len(),
        english_blocks.len()
    );
}

#[test]
fn chinese_readme_code_blocks_match_the_english_ones() {
    assert_same_code_blocks("README.md", "README.zh-CN.md");
}

#[test]
fn chinese_tutorial_code_blocks_match_the_english_ones() {
    assert_same_code_blocks("docs/tutorial.md", "docs/tutorial.zh-CN.md");
}

#[test]
fn the_tutorials_link_to_each_other() {
    assert!(read("docs/tutorial.zh-CN.md").starts_with("[English](tutorial.md)\n"));
    assert!(read("docs/tutorial.md").starts_with("[中文](tutorial.zh-CN.md)\n"));
}

#[test]
fn the_readmes_link_to_each_other() {
    assert!(read("README.zh-CN.md").starts_with("[English](README.md)\n"));
    assert!(read("README.md").contains("[README.zh-CN.md](README.zh-CN.md)"));
}

#[test]
fn the_readmes_link_to_both_tutorials() {
    for readme in ["README.md", "README.zh-CN.md"] {
        let text = read(readme);
        assert!(
            text.contains("(docs/tutorial.md)") && text.contains("(docs/tutorial.zh-CN.md)"),
            "{readme} does not link to docs/tutorial.md and docs/tutorial.zh-CN.md"
        );
    }
}
