//! The shared GPU context: one wgpu device and queue, chosen once, used by every GPU kernel.
//!
//! Adapter choice: real GPUs first (discrete, integrated, virtual), then CPU-type adapters
//! (Mesa's llvmpipe), and among equals Vulkan/Metal/DX12 before GL (GL lacks 64-bit integers
//! and often compute). `new_hardware_only` never returns a CPU-type adapter: `auto` must never
//! pick a software device for speed (DESIGN.md, decision 4).
//!
//! Device loss and uncaptured errors are recorded in flags instead of panicking (wgpu's
//! default uncaptured-error handler panics), so a kernel can report `GpuError` and its caller
//! can fall back to the CPU backend.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// Environment variable that makes GPU tests fail instead of skip when no adapter exists.
pub const REQUIRE_GPU_ENV: &str = "TALLY_REQUIRE_GPU";

/// Why a GPU operation failed. Every variant means "this GPU result is unavailable"; callers
/// that have a CPU backend should fall back to it.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum GpuError {
    #[error("no usable GPU adapter: {0}; install a GPU driver (or `apt-get install mesa-vulkan-drivers libvulkan1` for the software adapter) or use the CPU backend")]
    NoAdapter(String),
    #[error("the adapter '{adapter}' refused to create a device: {reason}; check the driver or use the CPU backend")]
    RequestDevice { adapter: String, reason: String },
    #[error("reading a result back from the GPU failed: {0}; the device may be lost, retry on the CPU backend")]
    Map(String),
    #[error("the GPU device was lost ({0}); results from it are void, use the CPU backend or restart the process to get a new device")]
    DeviceLost(String),
    #[error("waiting for the GPU failed: {0}")]
    Poll(String),
    #[error("the GPU reported an error: {0}; this is a bug in a kernel or an adapter limit was exceeded, use the CPU backend and report it")]
    Validation(String),
    #[error("{what} needs {needed_bytes} bytes but the adapter allows at most {limit_bytes}; split the batch or use the CPU backend")]
    TooLarge {
        what: &'static str,
        needed_bytes: u64,
        limit_bytes: u64,
    },
    #[error("invalid input for a GPU kernel: {0}")]
    InvalidInput(String),
}

/// The shared context, or the remembered reason there is none.
type SharedSlot = Result<Arc<GpuContext>, GpuError>;

/// Device-lost and uncaptured-error state, written by wgpu callbacks on any thread.
#[derive(Default)]
struct Health {
    lost: AtomicBool,
    lost_reason: Mutex<Option<String>>,
    error: Mutex<Option<String>>,
}

/// One wgpu device and queue plus what kernels need to know about the adapter.
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    /// The limits the device was created with: the adapter's own, not the WebGPU defaults.
    pub limits: wgpu::Limits,
    shader_int64: bool,
    health: Arc<Health>,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuContext")
            .field("adapter", &self.info.name)
            .field("backend", &self.info.backend)
            .field("device_type", &self.info.device_type)
            .field("shader_int64", &self.shader_int64)
            .finish_non_exhaustive()
    }
}

impl GpuContext {
    /// Any adapter with compute shaders, CPU-type (llvmpipe) allowed: for correctness tests
    /// and `--backend gpu`.
    ///
    /// Errors: `NoAdapter` when none is found, `RequestDevice` when the driver refuses.
    pub fn new() -> Result<GpuContext, GpuError> {
        Self::create(true)
    }

    /// Only a real GPU (never a `DeviceType::Cpu` adapter or a known software renderer): for
    /// `auto` backend selection.
    ///
    /// Errors: `NoAdapter` when no hardware adapter exists, `RequestDevice` when the driver
    /// refuses.
    pub fn new_hardware_only() -> Result<GpuContext, GpuError> {
        Self::create(false)
    }

    /// Process-wide shared context, created lazily with [`GpuContext::new`]. A failure is
    /// remembered (adapter enumeration is slow); a lost device is replaced on the next call.
    pub fn shared() -> Result<Arc<GpuContext>, GpuError> {
        static SHARED: OnceLock<Mutex<Option<SharedSlot>>> = OnceLock::new();
        let cell = SHARED.get_or_init(|| Mutex::new(None));
        let mut slot = cell.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(Ok(context)) = slot.as_ref() {
            if !context.is_lost() {
                return Ok(Arc::clone(context));
            }
            *slot = None;
        }
        slot.get_or_insert_with(|| GpuContext::new().map(Arc::new))
            .clone()
    }

    /// True for CPU-type adapters (llvmpipe, lavapipe, SwiftShader): correct, never fast.
    pub fn is_cpu_adapter(&self) -> bool {
        is_cpu_adapter_info(&self.info)
    }

    /// True when the device was created with `Features::SHADER_INT64` (only requested when
    /// the adapter offers it; portable kernels keep a 32-bit path).
    pub fn shader_int64(&self) -> bool {
        self.shader_int64
    }

    /// True once the device-lost callback has fired.
    pub fn is_lost(&self) -> bool {
        self.health.lost.load(Ordering::Acquire)
    }

    /// `Err(DeviceLost)` if the device is lost, else `Err(Validation)` with the first
    /// uncaptured error since the last call (and clears it), else `Ok`.
    ///
    /// Kernels call this after waiting for their work, so that a GPU error surfaces as a
    /// `GpuError` rather than as silently wrong output.
    pub fn check_health(&self) -> Result<(), GpuError> {
        if self.is_lost() {
            let reason = lock(&self.health.lost_reason)
                .clone()
                .unwrap_or_else(|| "no reason given".to_owned());
            return Err(GpuError::DeviceLost(reason));
        }
        if let Some(error) = lock(&self.health.error).take() {
            return Err(GpuError::Validation(error));
        }
        Ok(())
    }

    /// Blocks until all submitted work is done, then checks health.
    pub fn wait_idle(&self) -> Result<(), GpuError> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|error| GpuError::Poll(error.to_string()))?;
        self.check_health()
    }

    /// Copies the first `bytes` of `buffer` (usage `MAP_READ`, not mapped) into a vector.
    /// Waits for all submitted work first.
    ///
    /// Errors: `Map` if mapping fails, `DeviceLost`/`Validation` from [`Self::check_health`].
    pub fn read_buffer(&self, buffer: &wgpu::Buffer, bytes: u64) -> Result<Vec<u8>, GpuError> {
        let mut out = Vec::new();
        self.read_buffer_into(buffer, bytes, &mut out)?;
        Ok(out)
    }

    /// Like [`Self::read_buffer`] but reuses `out` (cleared first) to avoid an allocation.
    pub fn read_buffer_into(
        &self,
        buffer: &wgpu::Buffer,
        bytes: u64,
        out: &mut Vec<u8>,
    ) -> Result<(), GpuError> {
        out.clear();
        if bytes == 0 {
            return self.wait_idle();
        }
        if bytes > buffer.size() {
            return Err(GpuError::InvalidInput(format!(
                "read of {bytes} bytes from a buffer of {} bytes",
                buffer.size()
            )));
        }
        let slice = buffer.slice(..bytes);
        let (sender, receiver) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |result| {
            // The receiver lives until recv below returns; a send error cannot happen.
            let _ = sender.send(result);
        });
        self.wait_idle()?;
        match receiver.recv() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(GpuError::Map(error.to_string())),
            Err(_) => return Err(GpuError::Map("map callback never ran".to_owned())),
        }
        {
            let view = slice
                .get_mapped_range()
                .map_err(|error| GpuError::Map(error.to_string()))?;
            out.extend_from_slice(&view);
        }
        buffer.unmap();
        Ok(())
    }

    fn create(allow_cpu: bool) -> Result<GpuContext, GpuError> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
        let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
        let mut seen = Vec::new();
        let mut best: Option<(u32, wgpu::Adapter)> = None;
        for adapter in adapters {
            let info = adapter.get_info();
            seen.push(format!(
                "{} ({:?}, {:?})",
                info.name, info.backend, info.device_type
            ));
            let compute = adapter
                .get_downlevel_capabilities()
                .flags
                .contains(wgpu::DownlevelFlags::COMPUTE_SHADERS);
            if !compute || (!allow_cpu && is_cpu_adapter_info(&info)) {
                continue;
            }
            let rank = adapter_rank(&info);
            if best.as_ref().is_none_or(|(best_rank, _)| rank > *best_rank) {
                best = Some((rank, adapter));
            }
        }
        let Some((_, adapter)) = best else {
            let kind = if allow_cpu {
                "any"
            } else {
                "hardware (non-CPU)"
            };
            let seen = if seen.is_empty() {
                "none found".to_owned()
            } else {
                format!("saw {}", seen.join(", "))
            };
            return Err(GpuError::NoAdapter(format!(
                "wanted a {kind} adapter with compute shaders, {seen}"
            )));
        };
        let info = adapter.get_info();
        let offered = adapter.features();
        let shader_int64 = offered.contains(wgpu::Features::SHADER_INT64);
        let mut required_features = wgpu::Features::empty();
        if shader_int64 {
            required_features |= wgpu::Features::SHADER_INT64;
        }
        // The adapter's own limits: the defaults cap storage buffers at 128 MiB and would
        // cut batches short on real GPUs.
        let limits = adapter.limits();
        let descriptor = wgpu::DeviceDescriptor {
            label: Some("tally"),
            required_features,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        };
        let (device, queue) =
            pollster::block_on(adapter.request_device(&descriptor)).map_err(|error| {
                GpuError::RequestDevice {
                    adapter: info.name.clone(),
                    reason: error.to_string(),
                }
            })?;
        let health = Arc::new(Health::default());
        let lost_health = Arc::clone(&health);
        device.set_device_lost_callback(move |reason, message| {
            *lock(&lost_health.lost_reason) = Some(format!("{reason:?}: {message}"));
            lost_health.lost.store(true, Ordering::Release);
            tracing::error!(?reason, %message, "GPU device lost");
        });
        let error_health = Arc::clone(&health);
        device.on_uncaptured_error(Arc::new(move |error: wgpu::Error| {
            tracing::error!(%error, "uncaptured GPU error");
            let mut slot = lock(&error_health.error);
            // Keep the first error: later ones are usually consequences of it.
            if slot.is_none() {
                *slot = Some(error.to_string());
            }
        }));
        tracing::info!(
            adapter = %info.name,
            backend = ?info.backend,
            device_type = ?info.device_type,
            shader_int64,
            "GPU context created"
        );
        Ok(GpuContext {
            device,
            queue,
            info,
            limits,
            shader_int64,
            health,
        })
    }
}

/// True when `TALLY_REQUIRE_GPU=1`: GPU tests must then fail when no adapter is found.
pub fn gpu_required() -> bool {
    std::env::var(REQUIRE_GPU_ENV).is_ok_and(|value| value.trim() == "1")
}

fn is_cpu_adapter_info(info: &wgpu::AdapterInfo) -> bool {
    if info.device_type == wgpu::DeviceType::Cpu {
        return true;
    }
    // GL adapters often report `Other`; recognise the software renderers by name.
    let name = info.name.to_ascii_lowercase();
    [
        "llvmpipe",
        "lavapipe",
        "softpipe",
        "swiftshader",
        "microsoft basic render",
    ]
    .iter()
    .any(|software| name.contains(software))
}

/// Higher is better: device type first, then the backend.
fn adapter_rank(info: &wgpu::AdapterInfo) -> u32 {
    let device = match info.device_type {
        _ if is_cpu_adapter_info(info) => 1,
        wgpu::DeviceType::DiscreteGpu => 5,
        wgpu::DeviceType::IntegratedGpu => 4,
        wgpu::DeviceType::VirtualGpu => 3,
        wgpu::DeviceType::Other => 2,
        wgpu::DeviceType::Cpu => 1,
    };
    let backend = match info.backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 2,
        wgpu::Backend::Gl => 1,
        _ => 0,
    };
    device * 10 + backend
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave the Option half-written.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
