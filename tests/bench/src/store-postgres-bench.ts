/** Placeholder module resolved by `--store postgres`; filled in with the PostgreSQL adapter. */
export async function runPostgresStoreBench(_options: { seconds: number }): Promise<void> {
  throw new Error('the PostgreSQL store benchmark is not written yet');
}
