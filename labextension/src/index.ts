import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';

/** Placeholder while the sidebar lands: proves the build and the packaging. */
const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-iotcable:plugin',
  description: 'IoT channels sidebar and broker status for jupyter-iotcable',
  autoStart: true,
  activate: (app: JupyterFrontEnd) => {
    void app;
  }
};

export default plugin;
