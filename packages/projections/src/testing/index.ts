export { foldMission } from './fold.js';
export { forgeExport } from './forge.js';
export {
  mulberry32,
  type SyntheticOptions,
  syntheticMissionEventData,
  syntheticMissionEvents,
} from './synthetic.js';
