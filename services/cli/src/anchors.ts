import type { VerifyExportOptions } from '@muster/projections';

type ExportAnchors = NonNullable<VerifyExportOptions['anchors']>;

/** A hash known from another channel than the file: `--expect-head <revision>:<hash>`. */
export interface ExpectedHead {
  revision: number;
  hash: string;
}

const HEAD = /^(\d{1,15}):([0-9a-fA-F]{64})$/;

/** `<revision>:<SHA-256 in hex>`, or null when the text is not of that form. */
export function parseExpectedHead(text: string): ExpectedHead | null {
  const match = HEAD.exec(text.trim());
  if (!match) return null;
  return { revision: Number(match[1]), hash: (match[2] as string).toLowerCase() };
}

/**
 * The hashes of an earlier export, 32 bytes each: as hex strings in an array, the hashes of a
 * million-event export would take about ten times the memory.
 */
export class HashList {
  private bytes = new Uint8Array(32 * 1024);
  private count = 0;

  get length(): number {
    return this.count;
  }

  push(hex: string): void {
    if (!/^[0-9a-f]{64}$/.test(hex)) throw new Error(`not a SHA-256 hash: ${hex.slice(0, 80)}`);
    if ((this.count + 1) * 32 > this.bytes.length) {
      const grown = new Uint8Array(this.bytes.length * 2);
      grown.set(this.bytes);
      this.bytes = grown;
    }
    this.bytes.set(Buffer.from(hex, 'hex'), this.count * 32);
    this.count++;
  }

  at(index: number): string | undefined {
    if (!Number.isInteger(index) || index < 0 || index >= this.count) return undefined;
    return Buffer.from(this.bytes.buffer, this.bytes.byteOffset + index * 32, 32).toString('hex');
  }
}

/** What the export being verified must hold: an earlier export as its prefix, and given hashes. */
export function exportAnchors(
  earlier: { source: string; stream: string; hashes: HashList } | null,
  heads: readonly ExpectedHead[],
): ExportAnchors | undefined {
  if (!earlier && heads.length === 0) return undefined;
  const byRevision = new Map<number, { hash: string; source: string }[]>();
  for (const head of heads) {
    const known = byRevision.get(head.revision) ?? [];
    known.push({ hash: head.hash, source: `--expect-head ${head.revision}:${head.hash.slice(0, 16)}…` });
    byRevision.set(head.revision, known);
  }
  const earlierLast = earlier ? earlier.hashes.length - 1 : -1;
  const headsLast = heads.reduce((max, head) => Math.max(max, head.revision), -1);
  const lastRevision = Math.max(earlierLast, headsLast);
  const lastSource =
    earlier && earlierLast >= headsLast
      ? `the earlier export ${earlier.source}`
      : `--expect-head ${headsLast}:${byRevision.get(headsLast)?.[0]?.hash.slice(0, 16)}…`;
  return {
    ...(earlier ? { stream: earlier.stream, source: `the earlier export ${earlier.source}` } : {}),
    lastRevision,
    lastSource,
    expected: (revision) => {
      const fromEarlier = earlier?.hashes.at(revision);
      const given = byRevision.get(revision) ?? [];
      return fromEarlier === undefined
        ? given
        : [{ hash: fromEarlier, source: `the earlier export ${earlier?.source}` }, ...given];
    },
  };
}
