import type { FastifyInstance } from 'fastify';
import { ApiError } from './errors.js';

/**
 * Text that may hold a key reaching an object's prototype, written plainly or with JSON escapes
 * (`"\\u005f_proto__"` parses to `__proto__`): only such bodies are walked.
 */
const SUSPECT = /__proto__|constructor|\\u/;

/**
 * The JSON body parser: fastify's own refuses `__proto__` with the message every syntax error
 * gets, "not valid JSON", which sends a client looking for a typo in a valid document. This one
 * answers a syntax error as `malformed-json` and a forbidden key as `validation-failed` naming
 * where it is.
 */
export function registerJsonBodyParser(app: FastifyInstance): void {
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, text, done) => {
    const body = text as string;
    if (body.length === 0) {
      done(new ApiError('malformed-json', 'The body is empty but the content type is application/json'));
      return;
    }
    let value: unknown;
    try {
      value = JSON.parse(body);
    } catch {
      done(new ApiError('malformed-json', 'The body is not valid JSON'));
      return;
    }
    const path = SUSPECT.test(body) ? forbiddenKey(value) : null;
    if (path !== null) {
      done(
        new ApiError(
          'validation-failed',
          `${path}: a key that could reach an object prototype; leave it out`,
          {
            errors: [
              {
                path,
                message: 'a key that could reach an object prototype',
                code: 'forbidden-key',
                in: 'body',
              },
            ],
          },
        ),
      );
      return;
    }
    done(null, value);
  });
}

/**
 * The path of the first `__proto__` key, or `constructor` holding `prototype`, in a parsed value.
 * Walked with a stack of its own: a body may nest as deep as JSON.parse goes.
 */
export function forbiddenKey(value: unknown): string | null {
  const stack: Array<{ node: unknown; path: string }> = [{ node: value, path: '' }];
  while (stack.length > 0) {
    const { node, path } = stack.pop() as { node: unknown; path: string };
    if (typeof node !== 'object' || node === null) continue;
    const children: Array<{ node: unknown; path: string }> = [];
    if (Array.isArray(node)) {
      for (let i = 0; i < node.length; i++) children.push({ node: node[i], path: `${path}[${i}]` });
    } else {
      for (const key of Object.keys(node)) {
        const at = path === '' ? key : `${path}.${key}`;
        const member = (node as Record<string, unknown>)[key];
        if (key === '__proto__') return at;
        if (
          key === 'constructor' &&
          typeof member === 'object' &&
          member !== null &&
          Object.hasOwn(member, 'prototype')
        )
          return at;
        children.push({ node: member, path: at });
      }
    }
    // Reversed: siblings are walked in the document's order.
    for (let i = children.length - 1; i >= 0; i--) stack.push(children[i] as { node: unknown; path: string });
  }
  return null;
}
