//! `README.zh-CN.md` translates the prose of `README.md` and nothing else:
//! every fenced code block (commands, output samples, code) must be the same,
//! byte for byte and in the same order, so the translation cannot drift from
//! the commands it describes.

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

#[test]
fn chinese_readme_code_blocks_match_the_english_ones() {
    let english = code_blocks(&read("README.md"));
    let chinese = code_blocks(&read("README.zh-CN.md"));
    assert!(!english.is_empty(), "README.md has no code blocks");
    for (i, (en, zh)) in english.iter().zip(&chinese).enumerate() {
        assert_eq!(
            zh,
            en,
            "code block {} of README.zh-CN.md differs from README.md's",
            i + 1
        );
    }
    assert_eq!(
        chinese.len(),
        english.len(),
        "README.zh-CN.md has {} code blocks, README.md {}",
        chinese.len(),
        english.len()
    );
}

#[test]
fn the_readmes_link_to_each_other() {
    assert!(read("README.zh-CN.md").starts_with("[English](README.md)\n"));
    assert!(read("README.md").contains("[README.zh-CN.md](README.zh-CN.md)"));
}
