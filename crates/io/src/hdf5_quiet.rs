//! Keep HDF5 from printing its error stack to stderr.
//!
//! libnetcdf probes optional attributes (e.g. `_QuantizeBitGroomNumberOf...`)
//! through HDF5 calls that are expected to fail, and switches HDF5's automatic
//! error printing off only for the thread that first initialises it. HDF5's
//! error state is per thread, so every other thread that reads a NetCDF-4
//! file spews `HDF5-DIAG` stacks for errors that are not errors. This module
//! switches the printing off once on each thread before it uses libnetcdf.
//!
//! HDF5 is not linked directly (only through libnetcdf), so its
//! `H5Eset_auto2` is looked up at run time; when that fails (no HDF5, an
//! unexpected platform) nothing happens, which only means noisier stderr.

use std::cell::Cell;

thread_local! {
    static SILENCED: Cell<bool> = const { Cell::new(false) };
}

#[cfg(all(unix, target_pointer_width = "64"))]
mod ffi {
    use std::ffi::{c_char, c_int, c_void};

    extern "C" {
        pub fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
    }

    /// `herr_t H5Eset_auto2(hid_t estack_id, H5E_auto2_t func, void *client_data)`;
    /// `hid_t` is a 64-bit integer since HDF5 1.10.
    pub type H5ESetAuto2 = unsafe extern "C" fn(i64, *mut c_void, *mut c_void) -> c_int;

    /// `H5E_DEFAULT`: the current thread's default error stack.
    pub const H5E_DEFAULT: i64 = 0;
}

/// Switch off HDF5's automatic error printing for the calling thread.
// The crate denies `unsafe_code`; this function holds its only unsafe block
// (a `dlsym` lookup and an FFI call), justified by the SAFETY comment below.
#[allow(unsafe_code)]
pub(crate) fn silence_this_thread() {
    if SILENCED.with(Cell::get) {
        return;
    }
    SILENCED.with(|s| s.set(true));
    #[cfg(all(unix, target_pointer_width = "64"))]
    {
        // RTLD_DEFAULT is the null handle on glibc and musl: search every
        // loaded object, which includes the HDF5 that libnetcdf loaded.
        // SAFETY: dlsym is called with a valid NUL-terminated name; a
        // non-null result is the address of H5Eset_auto2, whose C signature
        // is the one declared above; passing a null function pointer with
        // the default stack id is the documented way to disable printing.
        unsafe {
            let symbol = ffi::dlsym(std::ptr::null_mut(), c"H5Eset_auto2".as_ptr());
            if !symbol.is_null() {
                let set_auto: ffi::H5ESetAuto2 = std::mem::transmute(symbol);
                set_auto(ffi::H5E_DEFAULT, std::ptr::null_mut(), std::ptr::null_mut());
            }
        }
    }
}
