//! Resident memory of a process and its descendants, from `/proc`.
//!
//! Descendants count because some proxies fork workers; a process alone would under-report.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;

/// Sums `VmRSS` of `pid` and every process below it, in KiB.
pub fn process_tree_rss_kib(pid: u32) -> io::Result<u64> {
    let tree = descendants(pid)?;
    let mut total = vm_rss_kib(pid)?;
    for child in tree {
        // A child may exit between the scan and the read: skip it.
        total += vm_rss_kib(child).unwrap_or(0);
    }
    Ok(total)
}

/// `VmRSS` of one process, in KiB.
pub fn vm_rss_kib(pid: u32) -> io::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_vm_rss(&status).ok_or_else(|| io::Error::other(format!("no VmRSS for pid {pid}")))
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Every process whose ancestry reaches `root`.
fn descendants(root: u32) -> io::Result<Vec<u32>> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for entry in fs::read_dir("/proc")? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if let Some(ppid) = parse_ppid(&stat) {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut found = Vec::new();
    let mut seen = HashSet::from([root]);
    let mut queue = vec![root];
    while let Some(pid) = queue.pop() {
        for &child in children.get(&pid).into_iter().flatten() {
            if seen.insert(child) {
                found.push(child);
                queue.push(child);
            }
        }
    }
    Ok(found)
}

/// The parent pid from `/proc/PID/stat`: the name in parentheses may hold spaces, so read
/// after the last `)`: state, then ppid.
fn parse_ppid(stat: &str) -> Option<u32> {
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        assert_eq!(
            parse_vm_rss("Name:\tx\nVmRSS:\t   12345 kB\nVmData: 1 kB\n"),
            Some(12345)
        );
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
        assert_eq!(parse_ppid("42 (a (b) c) S 7 42 42 0"), Some(7));
    }

    #[test]
    fn measures_this_process() {
        let rss = process_tree_rss_kib(std::process::id()).unwrap();
        assert!(rss > 100, "{rss} KiB");
    }
}
