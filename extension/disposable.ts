/**
 * The ownership base: everything long-lived is registered with exactly one owner, and disposing the owner
 * disposes what it registered, newest first. vscode-free (structural `{ dispose(): unknown }`), so pure
 * modules and unit tests can use it too.
 */
export interface DisposableLike {
  dispose(): unknown;
}

export abstract class Disposable implements DisposableLike {
  private readonly _owned: DisposableLike[] = [];
  private _disposed = false;

  protected get isDisposed(): boolean {
    return this._disposed;
  }

  /** Takes ownership of `d`; when this object is already disposed, `d` is disposed at once. */
  protected _register<T extends DisposableLike>(d: T): T {
    if (this._disposed) d.dispose();
    else this._owned.push(d);
    return d;
  }

  dispose(): void {
    if (this._disposed) return;
    this._disposed = true;
    for (const d of this._owned.splice(0).reverse()) {
      try {
        d.dispose();
      } catch {
        // one failing disposable must not keep the others alive
      }
    }
  }
}

/** A disposable from a function (clearTimeout, removeListener, …). */
export function toDisposable(fn: () => void): DisposableLike {
  let done = false;
  return {
    dispose: () => {
      if (!done) {
        done = true;
        fn();
      }
    },
  };
}
