/**
 * The status bar item: a dot coloured by the broker's state and the total readings per
 * second over the channels this user sees. Clicking it (or Enter / Space on it) opens
 * the sidebar.
 */

import { Widget } from '@lumino/widgets';

import { brokerLevel, IoTModel } from './model';
import { formatRate } from './sparkline';

export class IoTStatusItem extends Widget {
  constructor(
    private readonly _model: IoTModel,
    private readonly _open: () => void
  ) {
    super();
    this.addClass('jp-IoTCable-status');
    this.node.setAttribute('role', 'button');
    this.node.tabIndex = 0;
    this._dot = document.createElement('span');
    this._dot.className = 'jp-IoTCable-dot';
    this._dot.setAttribute('aria-hidden', 'true');
    this._text = document.createElement('span');
    this._text.className = 'jp-IoTCable-status-text';
    this.node.append(this._dot, this._text);
    this.node.addEventListener('click', () => this._open());
    this.node.addEventListener('keydown', (event: KeyboardEvent) => {
      if (event.key === 'Enter' || event.key === ' ') {
        event.preventDefault();
        this._open();
      }
    });
    _model.changed.connect(this._render, this);
    this._render();
  }

  private _render(): void {
    const model = this._model;
    let state: string;
    let words: string;
    if (model.problem) {
      state = model.problem.kind;
      words = model.problem.message;
    } else if (model.notConfiguredHint) {
      state = 'not_configured';
      words = 'the iotcable extension is installed but not configured';
    } else if (model.broker) {
      state = model.broker.state;
      words = `broker ${state}${model.broker.detail ? ` (${model.broker.detail})` : ''}`;
    } else {
      state = 'unknown';
      words = 'waiting for the server';
    }
    const rate = model.ready ? formatRate(model.totalRate) : '–';
    this.node.dataset.state = state;
    this.node.dataset.level = model.ready ? brokerLevel(state) : 'unknown';
    const text = `IoT ${rate}`;
    if (this._text.textContent !== text) {
      this._text.textContent = text;
    }
    const label = `IoT channels: ${words}; ${model.ready ? formatRate(model.totalRate).replace('/s', ' readings per second') : 'no readings'}. Click to open the IoT channels panel.`;
    this.node.title = label;
    this.node.setAttribute('aria-label', label);
  }

  private _dot: HTMLSpanElement;
  private _text: HTMLSpanElement;
}
