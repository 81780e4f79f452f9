/**
 * The status bar item: a dot coloured by the broker's state and the total readings per
 * second over the channels this user sees. Clicking it (or Enter / Space on it) opens
 * the sidebar.
 */

import { ITranslator, nullTranslator, TranslationBundle } from '@jupyterlab/translation';
import { Widget } from '@lumino/widgets';

import { problemText } from './api';
import { brokerLevel, IoTModel } from './model';
import { formatRate } from './sparkline';

export class IoTStatusItem extends Widget {
  constructor(
    private readonly _model: IoTModel,
    private readonly _open: () => void,
    translator: ITranslator = nullTranslator
  ) {
    super();
    this._trans = translator.load('jupyter_iotcable');
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
    const trans = this._trans;
    let state: string;
    let words: string;
    if (model.problem) {
      state = model.problem.kind;
      words = problemText(model.problem.kind, trans, model.problem.detail);
    } else if (model.notConfiguredHint !== null) {
      state = 'not_configured';
      words = trans.__('the iotcable extension is installed but not configured');
    } else if (model.broker) {
      state = model.broker.state;
      words = model.broker.detail
        ? trans.__('broker %1 (%2)', state, model.broker.detail)
        : trans.__('broker %1', state);
    } else {
      state = 'unknown';
      words = trans.__('waiting for the server');
    }
    const rate = model.ready ? formatRate(model.totalRate) : '–';
    this.node.dataset.state = state;
    this.node.dataset.level = model.ready ? brokerLevel(state) : 'unknown';
    const text = trans.__('IoT %1', rate);
    if (this._text.textContent !== text) {
      this._text.textContent = text;
    }
    const readings = model.ready
      ? trans.__('%1 readings per second', formatRate(model.totalRate).replace('/s', ''))
      : trans.__('no readings');
    const label = trans.__(
      'IoT channels: %1; %2. Click to open the IoT channels panel.',
      words,
      readings
    );
    this.node.title = label;
    this.node.setAttribute('aria-label', label);
  }

  private _trans: TranslationBundle;
  private _dot: HTMLSpanElement;
  private _text: HTMLSpanElement;
}
