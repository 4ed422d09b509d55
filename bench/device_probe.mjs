// The adapter probe of bench/device.sh (plain ESM, runs beside the bundle's node_modules/webgpu): asks Dawn for
// adapters the way the trainer does — its default backend (Vulkan on Linux) in core mode, then OpenGL ES in
// compatibility mode — and prints everything each attempt gives: the adapter's vendor, architecture, device,
// description, whether it is software (the trainer's own test), the limits that decide whether GPT-2 small fits,
// and whether a compute shader gives the right answer; or the exact error. When no hardware adapter turns up it
// also asks Dawn with `adapter=<no such name>`, whose error lists every adapter Dawn enumerated.
// Last line: `HARDWARE_ADAPTER=yes` or `HARDWARE_ADAPTER=no`.
import { create, globals } from 'webgpu';

Object.assign(globalThis, globals);
// the same test as trainer/backend_webgpu.ts (isSoftwareAdapter)
const SOFTWARE = /llvmpipe|lavapipe|softpipe|swiftshader|software|basic render driver|\bwarp\b/i;
const isSoftware = (a) => {
  const i = a.info ?? {};
  if (a.isFallbackAdapter === true || i.isFallbackAdapter === true) return true;
  if (typeof i.type === 'string' && /cpu/i.test(i.type)) return true;
  return SOFTWARE.test([i.vendor, i.architecture, i.device, i.description].filter(Boolean).join(' '));
};
const LIMITS = ['maxBufferSize', 'maxStorageBufferBindingSize', 'maxStorageBuffersPerShaderStage', 'maxComputeWorkgroupStorageSize', 'maxComputeInvocationsPerWorkgroup', 'maxComputeWorkgroupsPerDimension'];
const first = (e) => String((e && e.message) || e);

async function computeCheck(adapter) {
  const device = await adapter.requestDevice();
  const n = 1024;
  const buf = device.createBuffer({ size: n * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
  device.queue.writeBuffer(buf, 0, new Float32Array(n).map((_, k) => k));
  const module = device.createShaderModule({ code: `@group(0) @binding(0) var<storage, read_write> a: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) id: vec3u) { a[id.x] = a[id.x] * 2.0; }` });
  const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
  const bind = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: buf } }] });
  const read = device.createBuffer({ size: n * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bind);
  pass.dispatchWorkgroups(n / 64);
  pass.end();
  enc.copyBufferToBuffer(buf, 0, read, 0, n * 4);
  device.queue.submit([enc.finish()]);
  await read.mapAsync(GPUMapMode.READ);
  const v = new Float32Array(read.getMappedRange())[1023];
  device.destroy();
  return v === 2046 ? 'compute shader ok' : `compute shader WRONG (${v} for 2046)`;
}

const attempts = [
  { name: 'Dawn default backend (Vulkan on Linux), core', flags: [], featureLevel: 'core' },
  { name: 'Dawn OpenGL ES backend, compatibility', flags: ['backend=opengles'], featureLevel: 'compatibility' },
];
let hardware = false;
for (const a of attempts) {
  if (a.flags.includes('backend=opengles') && process.env.EGL_PLATFORM === undefined) process.env.EGL_PLATFORM = 'surfaceless';
  console.log(`--- ${a.name} (flags ${JSON.stringify(a.flags)}, featureLevel ${a.featureLevel})`);
  try {
    const adapter = await create(a.flags).requestAdapter({ featureLevel: a.featureLevel, powerPreference: 'high-performance' });
    if (!adapter) {
      console.log('no adapter (requestAdapter returned null)');
      continue;
    }
    const i = adapter.info ?? {};
    const software = isSoftware(adapter);
    hardware ||= !software;
    console.log(`adapter: vendor=${JSON.stringify(i.vendor ?? '')} architecture=${JSON.stringify(i.architecture ?? '')} device=${JSON.stringify(i.device ?? '')} description=${JSON.stringify(i.description ?? '')}`);
    console.log(`         ${software ? 'SOFTWARE (the trainer\'s auto order would not take it)' : 'HARDWARE'}; fallback=${adapter.isFallbackAdapter ?? i.isFallbackAdapter ?? 'n/a'}`);
    console.log(`limits:  ${LIMITS.map((k) => `${k}=${adapter.limits[k]}`).join(' ')}`);
    console.log(`features: ${[...adapter.features].sort().join(' ') || '(none)'}`);
    console.log(await computeCheck(adapter).catch((e) => `compute shader failed: ${first(e)}`));
  } catch (e) {
    console.log(`error: ${first(e)}`);
  }
}
if (!hardware) {
  console.log('--- Dawn flag adapter=no-such-adapter (its error lists the adapters Dawn enumerated)');
  try {
    const adapter = await create(['adapter=no-such-adapter']).requestAdapter({ powerPreference: 'high-performance' });
    console.log(adapter ? `an adapter came back anyway: ${JSON.stringify(adapter.info)}` : 'no adapter (requestAdapter returned null)');
  } catch (e) {
    console.log(`error: ${first(e)}`);
  }
}
console.log(`HARDWARE_ADAPTER=${hardware ? 'yes' : 'no'}`);
process.exit(0);
