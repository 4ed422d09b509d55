/**
 * Gives Lit the page's CSP nonce before any component loads (main.ts imports this first). Lit normally styles
 * components with constructable stylesheets, which the CSP does not govern; where it falls back to <style>
 * elements, they carry window.litNonce and pass `style-src 'nonce-…'`.
 */
const nonce = (document.currentScript as HTMLScriptElement | null)?.nonce;
if (nonce) (window as unknown as { litNonce?: string }).litNonce = nonce;
export {};
