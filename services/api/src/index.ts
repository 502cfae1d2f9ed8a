export { type AppDependencies, buildApp } from './app.js';
export { CONFIG_VARIABLES, type Config, ConfigError, loadConfig } from './config.js';
export { API_ERRORS, ApiError, type ApiErrorCode, type Problem } from './errors.js';
export { createLogger, REDACTED_PATHS } from './logger.js';
export { bootstrapAdmin, demoBanner, loadDemo } from './startup.js';
export { type OpenedStores, openStores, StoreOpenError } from './stores.js';
