/**
 * jupyter-iotcable's JupyterLab plugin: the "IoT channels" sidebar, the status bar item
 * and the commands that open and refresh them. Everything talks to the iotcable server
 * extension of the page's own Jupyter server (REST for the lists and the status, the
 * cable websocket for live readings and broker events).
 */

import {
  ILabShell,
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { IJupyterWidgetRegistry } from '@jupyter-widgets/base';
import { ServerConnection } from '@jupyterlab/services';
import { IStatusBar } from '@jupyterlab/statusbar';
import { refreshIcon } from '@jupyterlab/ui-components';

import { iotIcon } from './icons';
import { IoTModel } from './model';
import { IoTPanel, PANEL_ID } from './panel';
import { IoTStatusItem } from './statusitem';
import { CableTransport } from './transport';
import { LiveChartModel, LiveChartView, MODULE_NAME, MODULE_VERSION } from './widgets/livechart';

export namespace CommandIDs {
  export const open = 'iotcable:open';
  export const refresh = 'iotcable:refresh';
}

const PALETTE_CATEGORY = 'IoT channels';

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-iotcable:plugin',
  description: 'IoT channels sidebar and broker status for the jupyter-iotcable server extension',
  autoStart: true,
  optional: [ILabShell, ILayoutRestorer, ICommandPalette, IStatusBar],
  activate: (
    app: JupyterFrontEnd,
    labShell: ILabShell | null,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null,
    statusBar: IStatusBar | null
  ) => {
    const serverSettings = ServerConnection.makeSettings();
    const transport = new CableTransport({ serverSettings });
    const model = new IoTModel({ serverSettings, transport });
    const panel = new IoTPanel(model);
    panel.title.caption = 'IoT channels';
    app.shell.add(panel, 'left', { rank: 650 });
    restorer?.add(panel, PANEL_ID);

    app.commands.addCommand(CommandIDs.open, {
      label: 'Show IoT Channels',
      caption: 'Open the IoT channels sidebar (channels, rates, broker health)',
      icon: iotIcon,
      execute: () => {
        if (labShell) {
          labShell.activateById(PANEL_ID);
        } else {
          app.shell.activateById(PANEL_ID);
        }
      }
    });
    app.commands.addCommand(CommandIDs.refresh, {
      label: 'Refresh IoT Channels',
      caption: 'Fetch the channel list and the broker status again',
      icon: refreshIcon,
      execute: () => model.refresh()
    });
    if (palette) {
      palette.addItem({ command: CommandIDs.open, category: PALETTE_CATEGORY });
      palette.addItem({ command: CommandIDs.refresh, category: PALETTE_CATEGORY });
    }

    if (statusBar) {
      const item = new IoTStatusItem(model, () => {
        void app.commands.execute(CommandIDs.open);
      });
      statusBar.registerStatusItem('jupyter-iotcable:status', {
        item,
        align: 'left',
        rank: 4
      });
    }

    model.start();
  }
};

/**
 * The `sub.live()` chart (jupyter_iotcable.widgets.LiveChart), registered with the
 * Jupyter widget manager. A separate plugin: without ipywidgets' manager in the page it
 * is skipped and the sidebar plugin above still runs.
 */
const widgetsPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-iotcable:widgets',
  description: 'The live chart widget of sub.live() (jupyter_iotcable.widgets.LiveChart)',
  autoStart: true,
  requires: [IJupyterWidgetRegistry],
  activate: (_app: JupyterFrontEnd, registry: IJupyterWidgetRegistry) => {
    registry.registerWidget({
      name: MODULE_NAME,
      version: MODULE_VERSION,
      exports: { LiveChartModel, LiveChartView }
    });
  }
};

export default [plugin, widgetsPlugin];
