// Loading an optional peer dependency of an adapter entry point (a framework, undici).
import { AgentIamError } from '../errors.js';

/**
 * Load an adapter's optional peer, or fail with a typed error that names the package to install
 * (`CONFIG_INVALID`, `field` = the package) instead of Node's `ERR_MODULE_NOT_FOUND`.
 */
export async function loadPeer<T>(entry: string, pkg: string, range: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (error) {
    throw new AgentIamError('CONFIG_INVALID', `agent-iam/${entry} needs the optional peer dependency "${pkg}" (${range}): npm install ${pkg}@"${range}"`, { field: pkg, cause: error });
  }
}
