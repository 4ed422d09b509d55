/**
 * A minimal Parquet writer for tests (hyparquet cannot write), from the Parquet format spec: Thrift compact protocol,
 * PLAIN encoding, no compression, one row group; a string column (optionally nullable, optionally with raw invalid
 * bytes) and an INT64 column, plus optional key-value metadata such as `datasets`' "huggingface" features, and
 * optional corruptions of the schema and row count for the readers' error paths.
 */
class Compact {
  readonly out: number[] = [];
  private last: number[] = [0];
  private varint(v: bigint): void {
    while (v >= 0x80n) {
      this.out.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    this.out.push(Number(v));
  }
  private zigzag(v: number | bigint): void {
    const b = BigInt(v);
    this.varint(b >= 0n ? b << 1n : ((-b) << 1n) - 1n);
  }
  private header(id: number, type: number): void {
    const delta = id - this.last[this.last.length - 1];
    if (delta > 0 && delta <= 15) this.out.push((delta << 4) | type);
    else {
      this.out.push(type);
      this.zigzag(id);
    }
    this.last[this.last.length - 1] = id;
  }
  i32(id: number, v: number): this {
    this.header(id, 5);
    this.zigzag(v);
    return this;
  }
  i64(id: number, v: number): this {
    this.header(id, 6);
    this.zigzag(v);
    return this;
  }
  str(id: number, s: string): this {
    this.header(id, 8);
    this.bytes(Buffer.from(s));
    return this;
  }
  private bytes(b: Uint8Array): void {
    this.varint(BigInt(b.length));
    this.out.push(...b);
  }
  struct(id: number, body: (c: this) => void): this {
    this.header(id, 12);
    this.body(body);
    return this;
  }
  body(body: (c: this) => void): this {
    this.last.push(0);
    body(this);
    this.out.push(0);
    this.last.pop();
    return this;
  }
  private listHeader(id: number, size: number, type: number): void {
    this.header(id, 9);
    if (size < 15) this.out.push((size << 4) | type);
    else {
      this.out.push(0xf0 | type);
      this.varint(BigInt(size));
    }
  }
  structs<T>(id: number, items: T[], body: (c: this, item: T) => void): this {
    this.listHeader(id, items.length, 12);
    for (const item of items) this.body((c) => body(c, item));
    return this;
  }
  i32s(id: number, items: number[]): this {
    this.listHeader(id, items.length, 5);
    for (const v of items) this.zigzag(v);
    return this;
  }
  strs(id: number, items: string[]): this {
    this.listHeader(id, items.length, 8);
    for (const s of items) this.bytes(Buffer.from(s));
    return this;
  }
}

export type ParquetCell = string | Uint8Array | number | null;
export interface ParquetColumn {
  name: string;
  type: 'string' | 'int64';
  values: ParquetCell[];
}

function le32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

/** Every column is OPTIONAL (nullable), as pandas/pyarrow write them. */
export function writeParquet(columns: ParquetColumn[], keyValue: Record<string, string> = {}, corrupt: { rootChildren?: number; childChildren?: number; numRows?: number } = {}): Buffer {
  const numRows = columns[0].values.length;
  const parts: Buffer[] = [Buffer.from('PAR1')];
  let offset = 4;
  const chunks: Array<{ col: ParquetColumn; offset: number; size: number }> = [];
  for (const col of columns) {
    // definition levels (bit width 1), RLE runs: varint(count << 1), then the value in one byte
    const levels: number[] = [];
    for (let i = 0; i < numRows; ) {
      const v = col.values[i] === null ? 0 : 1;
      let j = i;
      while (j < numRows && (col.values[j] === null ? 0 : 1) === v) j++;
      let run = (j - i) << 1;
      while (run >= 0x80) {
        levels.push((run & 0x7f) | 0x80);
        run >>>= 7;
      }
      levels.push(run, v);
      i = j;
    }
    const values: Buffer[] = [];
    for (const v of col.values) {
      if (v === null) continue;
      if (col.type === 'int64') {
        const b = Buffer.alloc(8);
        b.writeBigInt64LE(BigInt(v as number));
        values.push(b);
      } else {
        const bytes = typeof v === 'string' ? Buffer.from(v) : Buffer.from(v as Uint8Array);
        values.push(le32(bytes.length), bytes);
      }
    }
    const page = Buffer.concat([le32(levels.length), Buffer.from(levels), ...values]);
    const header = new Compact()
      .i32(1, 0) // DATA_PAGE
      .i32(2, page.length)
      .i32(3, page.length)
      .struct(5, (c) => c.i32(1, numRows).i32(2, 0).i32(3, 3).i32(4, 3)).out;
    header.push(0);
    const chunk = Buffer.concat([Buffer.from(header), page]);
    chunks.push({ col, offset, size: chunk.length });
    parts.push(chunk);
    offset += chunk.length;
  }
  const meta = new Compact();
  meta.i32(1, 1);
  meta.structs(2, [null, ...columns], (c, col) => {
    if (col === null) c.str(4, 'schema').i32(5, corrupt.rootChildren ?? columns.length);
    else {
      c.i32(1, col.type === 'int64' ? 2 : 6).i32(3, 1).str(4, col.name);
      if (corrupt.childChildren !== undefined) c.i32(5, corrupt.childChildren);
      if (col.type === 'string') c.i32(6, 0); // UTF8
    }
  });
  meta.i64(3, corrupt.numRows ?? numRows);
  meta.structs(4, [0], (c) => {
    c.structs(1, chunks, (cc, ch) =>
      cc.i64(2, ch.offset).struct(3, (m) =>
        m
          .i32(1, ch.col.type === 'int64' ? 2 : 6)
          .i32s(2, [0, 3])
          .strs(3, [ch.col.name])
          .i32(4, 0)
          .i64(5, numRows)
          .i64(6, ch.size)
          .i64(7, ch.size)
          .i64(9, ch.offset),
      ),
    );
    c.i64(2, chunks.reduce((s, ch) => s + ch.size, 0)).i64(3, numRows);
  });
  const kv = Object.entries(keyValue);
  if (kv.length) meta.structs(5, kv, (c, [k, v]) => c.str(1, k).str(2, v));
  meta.out.push(0);
  const footer = Buffer.from(meta.out);
  parts.push(footer, le32(footer.length), Buffer.from('PAR1'));
  return Buffer.concat(parts);
}

