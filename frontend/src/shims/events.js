// xmlbuilder2 (through vtk.js) `require`s Node's events module at load; a minimal emitter.
export class EventEmitter {
  constructor() {
    this._handlers = new Map();
  }
  on(name, handler) {
    if (!this._handlers.has(name)) this._handlers.set(name, []);
    this._handlers.get(name).push(handler);
    return this;
  }
  emit(name, ...args) {
    for (const handler of this._handlers.get(name) || []) handler(...args);
    return true;
  }
  removeListener(name, handler) {
    this._handlers.set(name, (this._handlers.get(name) || []).filter((h) => h !== handler));
    return this;
  }
}
export default EventEmitter;
