/**
 * jupyter-iotcable's JupyterLab plugin: the "IoT channels" sidebar, the status bar item
 * and the commands that open and refresh them. Everything talks to the iotcable server
 * extension of the page's own Jupyter server (REST for the lists, the status and
 * publishing, the cable websocket for live readings and broker events).
 *
 * Its settings (schema/plugin.json: poll interval, readings shown per channel) are
 * edited in Lab's Settings Editor and applied while Lab runs; its words go through Lab's
 * translator (domain `jupyter_iotcable`).
 */

import {
  ILabShell,
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { ServerConnection } from '@jupyterlab/services';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';
import { refreshIcon } from '@jupyterlab/ui-components';

import { iotIcon } from './icons';
import { DEFAULT_SETTINGS, IoTModel } from './model';
import { IoTPanel, PANEL_ID } from './panel';
import { IoTStatusItem } from './statusitem';
import { CableTransport } from './transport';

export namespace CommandIDs {
  export const open = 'iotcable:open';
  export const refresh = 'iotcable:refresh';
}

const PLUGIN_ID = 'jupyter-iotcable:plugin';

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'IoT channels sidebar and broker status for the jupyter-iotcable server extension',
  autoStart: true,
  optional: [
    ILabShell,
    ILayoutRestorer,
    ICommandPalette,
    IStatusBar,
    ISettingRegistry,
    ITranslator
  ],
  activate: (
    app: JupyterFrontEnd,
    labShell: ILabShell | null,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null,
    statusBar: IStatusBar | null,
    settingRegistry: ISettingRegistry | null,
    translator: ITranslator | null
  ) => {
    translator = translator ?? nullTranslator;
    const trans = translator.load('jupyter_iotcable');
    const serverSettings = ServerConnection.makeSettings();
    const transport = new CableTransport({ serverSettings });
    const model = new IoTModel({ serverSettings, transport });
    const panel = new IoTPanel(model, translator);
    app.shell.add(panel, 'left', { rank: 650 });
    restorer?.add(panel, PANEL_ID);

    app.commands.addCommand(CommandIDs.open, {
      label: trans.__('Show IoT Channels'),
      caption: trans.__('Open the IoT channels sidebar (channels, rates, broker health)'),
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
      label: trans.__('Refresh IoT Channels'),
      caption: trans.__('Fetch the channel list and the broker status again'),
      icon: refreshIcon,
      execute: () => model.refresh()
    });
    if (palette) {
      const category = trans.__('IoT channels');
      palette.addItem({ command: CommandIDs.open, category });
      palette.addItem({ command: CommandIDs.refresh, category });
    }

    if (statusBar) {
      const item = new IoTStatusItem(
        model,
        () => {
          void app.commands.execute(CommandIDs.open);
        },
        translator
      );
      statusBar.registerStatusItem('jupyter-iotcable:status', {
        item,
        align: 'left',
        rank: 4
      });
    }

    if (settingRegistry) {
      // Settings load while the first poll runs; they apply when they arrive and on
      // every change in the Settings Editor. Lab has validated them against the schema.
      const apply = (settings: ISettingRegistry.ISettings) => {
        const seconds = settings.get('pollInterval').composite as number;
        const shown = settings.get('readingsShown').composite as number;
        model.configure({
          pollInterval: (seconds ?? DEFAULT_SETTINGS.pollInterval / 1000) * 1000,
          readingsShown: shown ?? DEFAULT_SETTINGS.readingsShown
        });
      };
      settingRegistry
        .load(PLUGIN_ID)
        .then(settings => {
          apply(settings);
          settings.changed.connect(apply);
        })
        .catch(reason => {
          console.error(`jupyter-iotcable: could not load the settings of ${PLUGIN_ID}`, reason);
        });
    }

    model.start();
  }
};

export default plugin;
