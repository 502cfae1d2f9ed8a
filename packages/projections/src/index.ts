export {
  appendChanges,
  CHANGE_KINDS,
  type ChangeKind,
  changeFeedMigrations,
  type ReadinessChange,
  readChangeFeed,
  toChange,
} from './change-feed.js';
