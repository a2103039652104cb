//! glibc malloc settings for a process that moves bulk data: freed buffers stay with the
//! process for the next ones instead of going back to the kernel after every burst.
//!
//! With glibc's defaults an arena gives the top of its heap back once more than 128 KiB there
//! is free, and the next buffer faults fresh zeroed pages in. A tunnel carrying one bulk
//! stream frees and allocates 32 KiB frames all the time: on the agent, page faults and page
//! zeroing took about a tenth of the CPU, and the single-stream figure of `bench/tunnel.sh`
//! rose by a quarter to a third with these settings. The cost is up to [`TRIM_THRESHOLD`] of
//! free memory kept per arena after a burst.
//!
//! This is the workspace's one use of `unsafe`: a call into the C library with plain integer
//! arguments.

/// Free memory at the top of an arena kept rather than returned to the system.
pub const TRIM_THRESHOLD: usize = 8 << 20;

/// Allocations from this size up get their own mapping; a fixed value also stops glibc from
/// raising the trim threshold on its own.
pub const MMAP_THRESHOLD: usize = 1 << 20;

/// Applies the settings; call it first thing in `main`, before any thread starts.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn tune() {
    let (trim, mmap) = (TRIM_THRESHOLD as libc::c_int, MMAP_THRESHOLD as libc::c_int);
    // SAFETY: mallopt only sets allocator parameters, under the allocator's own lock; it reads
    // no memory of ours. A refusal (return value 0) leaves glibc's defaults, which work.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, trim);
        libc::mallopt(libc::M_MMAP_THRESHOLD, mmap);
    }
}

/// Other C libraries keep their own allocation policy.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn tune() {}
