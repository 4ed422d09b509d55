#!/usr/bin/env bash
# The GPU check of issue 12, for a Linux x64 machine with a GPU and no internet or npm. It runs from the bundle that
# `npm run bench:bundle` builds into bench/device-bundle/ (the device tool: carry ["bench/device-bundle"], then
# `bash bench/device.sh`); the bundle also carries a copy of this script, which runs the same from inside it.
#
#  (a) what the machine offers: nvidia-smi -L, the Vulkan ICD files, NVIDIA_DRIVER_CAPABILITIES, the Vulkan/EGL
#      libraries; then Dawn's adapters (probe.mjs): its default backend (Vulkan) first, then backend=opengles,
#      everything each gives (vendor, architecture, device, description, software or not, limits) or the exact error;
#  (b) with a HARDWARE adapter only: the GPT-2-small bench (random weights, LoRA r=8 on c_attn and attn.c_proj,
#      causal-lm) at 16×512 and 32×512 on webgpu, 480 s in all (DEVICE_BENCH_TIMEOUT), printing tokens/s, tfjs's
#      GPU buffer pool peak and nvidia-smi's memory.used peak. A software adapter (llvmpipe) gets no bench.
#
# Output goes to stdout and, when $OUT is set, to $OUT/device.log. Env: DEVICE_SHAPES (16x512,32x512),
# DEVICE_STEPS (timed steps per shape after one warm-up, 3), DEVICE_BENCH_TIMEOUT (480).
set -u
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ -f "$HERE/manifest.json" ] && [ -f "$HERE/ours.js" ]; then BUNDLE="$HERE"; else BUNDLE="$HERE/device-bundle"; fi
if [ -n "${OUT:-}" ]; then mkdir -p "$OUT"; exec > >(tee "$OUT/device.log") 2>&1; fi

SHAPES="${DEVICE_SHAPES:-16x512,32x512}"
STEPS="${DEVICE_STEPS:-3}"
BENCH_TIMEOUT="${DEVICE_BENCH_TIMEOUT:-480}"
say() { printf '\n== %s\n' "$*"; }

say "LoRA Studio GPU check ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(uname -srm))"
if [ ! -f "$BUNDLE/manifest.json" ]; then
  echo "no bundle at $BUNDLE: build it with \`npm run bench:bundle\` and pass carry [\"bench/device-bundle\"]"
  exit 2
fi
grep -E '^  "(built|commit|platform|node|system_libs|webgpu|tfjs-backend-webgpu|tfjs-core)"' "$BUNDLE/manifest.json"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/lora-device.XXXXXX")"
trap 'rm -rf "$WORK"; [ -n "${SMI_PID:-}" ] && kill "$SMI_PID" 2>/dev/null' EXIT
# the bundle's small files, and its two large ones unpacked (the bundle's folder may be read-only)
(cd "$BUNDLE" && cp -r ours.js cli.js probe.mjs ./*.wasm node_modules "$WORK"/) || { echo "copying the bundle failed"; exit 2; }
# Dawn dlopens libvulkan.so.1 (the Khronos loader) and libEGL.so (glvnd's dispatcher); a container may have NVIDIA's
# drivers (libGLX_nvidia.so.0 with the Vulkan ICD, libEGL_nvidia.so.0) without them: use the bundle's where missing
if [ -d "$BUNDLE/lib" ]; then
  mkdir -p "$WORK/lib"
  for lib in libvulkan.so.1 libEGL.so libEGL.so.1 libGLdispatch.so.0; do
    if ! ldconfig -p 2>/dev/null | awk '{print $1}' | grep -qxF "$lib" && [ -f "$BUNDLE/lib/$lib" ]; then cp "$BUNDLE/lib/$lib" "$WORK/lib/"; echo "the machine has no $lib: using the bundle's"; fi
  done
  [ -n "$(ls -A "$WORK/lib")" ] && export LD_LIBRARY_PATH="$WORK/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
# glvnd finds NVIDIA's EGL through a vendor JSON; supply one when the machine has the library but no JSON
if ! ls /usr/share/glvnd/egl_vendor.d/*nvidia* >/dev/null 2>&1 && ldconfig -p 2>/dev/null | grep -q 'libEGL_nvidia\.so\.0 '; then
  mkdir -p "$WORK/egl_vendor.d" && printf '{"file_format_version": "1.0.0", "ICD": {"library_path": "libEGL_nvidia.so.0"}}\n' > "$WORK/egl_vendor.d/10_nvidia.json"
  export __EGL_VENDOR_LIBRARY_DIRS="$WORK/egl_vendor.d"; echo "no glvnd EGL vendor JSON for NVIDIA: using one that names libEGL_nvidia.so.0"
fi
gzip -dc "$BUNDLE/node_modules/webgpu/dist/linux-x64/dawn.node.gz" > "$WORK/node_modules/webgpu/dist/linux-x64/dawn.node" || { echo "unpacking dawn.node failed"; exit 2; }
rm -f "$WORK/node_modules/webgpu/dist/linux-x64/dawn.node.gz"
NODE=""
if [ -f "$BUNDLE/node.gz" ] && gzip -dc "$BUNDLE/node.gz" > "$WORK/node" && chmod +x "$WORK/node" && "$WORK/node" -e 0 2>/dev/null; then
  NODE="$WORK/node"
elif command -v node >/dev/null && node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)'; then
  NODE="$(command -v node)"
else
  echo "no usable Node: the bundle has no node.gz (or it did not run here) and the machine has no node >= 20"; exit 2
fi
echo "node: $NODE ($("$NODE" --version))"

say "the machine"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi -L
  nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv
else
  echo "nvidia-smi: not found"
fi
echo "NVIDIA_DRIVER_CAPABILITIES=${NVIDIA_DRIVER_CAPABILITIES-<unset>} NVIDIA_VISIBLE_DEVICES=${NVIDIA_VISIBLE_DEVICES-<unset>} VK_ICD_FILENAMES=${VK_ICD_FILENAMES-<unset>} EGL_PLATFORM=${EGL_PLATFORM-<unset>}"
echo "(NVIDIA's Vulkan driver is mounted into a container only with the 'graphics' capability, or 'all')"
for d in /usr/share/vulkan/icd.d /etc/vulkan/icd.d; do echo "ls $d:"; ls -l "$d" 2>&1 | sed 's/^/  /'; done
echo "libraries (ldconfig -p):"
for f in /usr/local/nvidia/lib64/libGLX_nvidia.so.0 /usr/local/nvidia/lib64/libEGL_nvidia.so.0; do
  [ -f "$f" ] && { echo "ldd $f (missing only):"; ldd "$f" 2>&1 | grep -i 'not found' | sed 's/^/  /' || echo "  nothing missing"; }
done
echo "NVIDIA driver libraries present: $(ls /usr/local/nvidia/lib64 2>/dev/null | grep -oE '^lib(nvidia|cuda|EGL|GLX|GLES)[A-Za-z0-9_-]*' | sort -u | tr '\n' ' ')"
ldconfig -p 2>/dev/null | grep -E 'libvulkan\.so|libEGL\.so|libEGL_nvidia|libGLESv2|libnvidia-glcore|libGLX_nvidia' | sed 's/^/  /' || echo "  none of libvulkan, libEGL, libGLESv2, libEGL_nvidia found"

say "Dawn's adapters (default backend first, then backend=opengles)"
PROBE_OUT="$(cd "$WORK" && timeout 120 "$NODE" probe.mjs 2>&1)"; PROBE_RC=$?
printf '%s\n' "$PROBE_OUT"
[ "$PROBE_RC" -eq 0 ] || echo "the probe exited with status $PROBE_RC"

if ! printf '%s\n' "$PROBE_OUT" | grep -qx 'HARDWARE_ADAPTER=yes'; then
  say "bench: SKIPPED, Dawn offers no hardware adapter here (a software one, e.g. llvmpipe, is correct but not a GPU measurement); no GPU number was produced"
  exit 0
fi

say "bench: GPT-2 small, LoRA r=8 (c_attn, attn.c_proj), causal-lm, webgpu, shapes $SHAPES, $STEPS timed steps each after a warm-up, ${BENCH_TIMEOUT}s in all"
SMI_LOG="$WORK/smi.csv"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 250 > "$SMI_LOG" 2>/dev/null &
  SMI_PID=$!
fi
START=$(date +%s)
for shape in ${SHAPES//,/ }; do
  B="${shape%x*}"; T="${shape#*x}"
  LEFT=$(( BENCH_TIMEOUT - ($(date +%s) - START) ))
  if [ "$LEFT" -le 5 ]; then echo "RESULT causal-lm ${B}x${T} webgpu: not run, the ${BENCH_TIMEOUT}s budget is spent"; continue; fi
  before=$(wc -l < "$SMI_LOG" 2>/dev/null || echo 0)
  t0=$(date +%s)
  LINE="$(cd "$WORK" && timeout "$LEFT" "$NODE" ours.js causal-lm "$B" "$T" "$STEPS" webgpu 2> "$WORK/bench.err")"; rc=$?
  grep -v '^ - \|^validation' "$WORK/bench.err" | tail -n 20
  smi_peak=""
  [ -s "$SMI_LOG" ] && smi_peak="$(tail -n +"$((before + 1))" "$SMI_LOG" | sort -n | tail -1)"
  if [ "$rc" -eq 0 ] && [ -n "$LINE" ]; then
    echo "$LINE" | tail -1
    echo "$LINE" | tail -1 | "$NODE" -e '
      const r = JSON.parse(require("fs").readFileSync(0, "utf8"));
      const a = r.adapter || {};
      console.log(`RESULT causal-lm '"${B}x${T}"' webgpu: ${r.tokens_per_s.toFixed(1)} tok/s (median of ${r.step_s.length} steps: ${r.step_s.map((s) => s.toFixed(3)).join(", ")} s), tfjs GPU buffer pool peak ${Math.round(r.gpu_peak_mb)} MB, live tensors ${Math.round(r.tensors_mb)} MB, nvidia-smi memory.used peak '"${smi_peak:-n/a}"' MiB, host RSS ${Math.round(r.peak_rss_mb)} MB, loss ${r.loss.toFixed(4)}, adapter ${[a.vendor, a.architecture, a.device].filter(Boolean).join(" ")} (${a.description})${a.software ? " SOFTWARE" : ""}`);'
  elif [ "$rc" -eq 124 ]; then
    echo "RESULT causal-lm ${B}x${T} webgpu: TIMED OUT after ${LEFT}s ($(( $(date +%s) - t0 ))s run); nvidia-smi memory.used peak ${smi_peak:-n/a} MiB"
  else
    echo "RESULT causal-lm ${B}x${T} webgpu: FAILED (exit $rc); the stderr tail is above; nvidia-smi memory.used peak ${smi_peak:-n/a} MiB"
  fi
done
echo "bench: $(( $(date +%s) - START ))s"
